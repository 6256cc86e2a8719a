import { UsageError } from './errors';
import { DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS, maxTtlSeconds, parseTokenArgs } from './token-args';

describe('parseTokenArgs', () => {
  it('accepts a role, workspaces and defaults', () => {
    expect(parseTokenArgs({ role: 'l1', workspace: ['ziggie', 'art'] })).toEqual({
      subject: 'l1@local',
      roles: ['l1'],
      workspaces: ['ziggie', 'art'],
      ttlSeconds: DEFAULT_TTL_SECONDS,
    });
  });

  it('accepts "*", a ttl given as text and a subject', () => {
    expect(parseTokenArgs({ role: 'admin', workspace: ['*'], ttl: '60', subject: 'ops@example' })).toEqual({
      subject: 'ops@example',
      roles: ['admin'],
      workspaces: ['*'],
      ttlSeconds: 60,
    });
  });

  it('drops duplicate and blank workspaces', () => {
    expect(parseTokenArgs({ role: 'bmad', workspace: ['a', ' a ', ''] }).workspaces).toEqual(['a']);
  });

  it.each(['admin', 'l1', 'l2l3', 'bmad'])('accepts role %s', (role) => {
    expect(parseTokenArgs({ role, workspace: ['w'] }).roles).toEqual([role]);
  });

  it.each([
    [{ workspace: ['w'] }, /--role is required/],
    [{ role: 'root', workspace: ['w'] }, /unknown role "root": use one of admin, l1, l2l3, bmad/],
    [{ role: 'ADMIN', workspace: ['w'] }, /unknown role/],
    [{ role: 'l1' }, /at least one --workspace/],
    [{ role: 'l1', workspace: [] }, /at least one --workspace/],
    [{ role: 'l1', workspace: ['Bad Name'] }, /invalid workspace "Bad Name"/],
    [{ role: 'l1', workspace: ['w'], ttl: '0' }, /between 1 and/],
    [{ role: 'l1', workspace: ['w'], ttl: String(MAX_TTL_SECONDS + 1) }, /between 1 and/],
    [{ role: 'l1', workspace: ['w'], ttl: '1h' }, /whole number of seconds/],
    [{ role: 'l1', workspace: ['w'], ttl: '-5' }, /whole number of seconds/],
    [{ role: 'l1', workspace: ['w'], subject: 'two words' }, /--subject/],
  ])('rejects %j', (args, message) => {
    expect(() => parseTokenArgs(args)).toThrow(UsageError);
    expect(() => parseTokenArgs(args)).toThrow(message);
  });

  it('allows at most the services\' default token lifetime (24 hours), or JWT_MAX_TOKEN_LIFETIME_SECONDS', () => {
    expect(MAX_TTL_SECONDS).toBe(86_400);
    expect(parseTokenArgs({ role: 'l1', workspace: ['w'], ttl: '86400' }).ttlSeconds).toBe(86_400);
    expect(maxTtlSeconds({})).toBe(86_400);
    expect(maxTtlSeconds({ JWT_MAX_TOKEN_LIFETIME_SECONDS: '604800' })).toBe(604_800);
    expect(maxTtlSeconds({ JWT_MAX_TOKEN_LIFETIME_SECONDS: 'a week' })).toBe(86_400);
    expect(parseTokenArgs({ role: 'l1', workspace: ['w'], ttl: '604800' }, 604_800).ttlSeconds).toBe(604_800);
    expect(() => parseTokenArgs({ role: 'l1', workspace: ['w'], ttl: '3601' }, 3600)).toThrow(/between 1 and 3600 seconds/);
  });
});

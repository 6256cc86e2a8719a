import { UsageError } from './errors';
import { DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS, parseTokenArgs } from './token-args';

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
});

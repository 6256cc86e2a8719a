import { UriTemplate } from '@modelcontextprotocol/sdk/shared/uriTemplate.js';
import { TemplateMatcher } from './uri-template';

describe('TemplateMatcher', () => {
  it('matches what the SDK UriTemplate matches, and refuses what it refuses', () => {
    const cases: Array<[string, string]> = [
      ['demo://resource/dynamic/text/{resourceId}', 'demo://resource/dynamic/text/42'],
      ['demo://resource/dynamic/text/{resourceId}', 'demo://resource/dynamic/text/4/2'],
      ['demo://resource/dynamic/text/{resourceId}', 'demo://resource/dynamic/blob/42'],
      ['file:///{+path}', 'file:///a/b/c.txt'],
      ['file:///{+path}', 'file:///'],
      ['users{/id}', 'users/7'],
      ['users{/ids*}', 'users/7,8,9'],
      ['search{?q,lang}', 'search?q=cats&lang=en'],
      ['search{?q,lang}', 'search?q=cats'],
      ['file{.ext}', 'file.txt'],
      ['a.b+{x}', 'a.b+y'],
      ['a.b+{x}', 'aXb+y'],
      ['{a,b}', 'x,y'],
    ];
    for (const [template, uri] of cases) {
      expect(`${template} ~ ${uri}: ${new TemplateMatcher(template).matches(uri)}`).toBe(`${template} ~ ${uri}: ${new UriTemplate(template).match(uri) !== null}`);
    }
  });

  it('is linear in the URI for templates that backtrack polynomially as a JavaScript RegExp', () => {
    // `^(.+)(.+)(.+)(.+)(.+)(.+)x$` against 8,000 characters is ~10^20 steps for a backtracking engine.
    expect(new TemplateMatcher('{+a}{+b}{+c}{+d}{+e}{+f}x').matches('y'.repeat(8_000))).toBe(false);
  });

  it('does not match over-long URIs and refuses broken or over-long templates', () => {
    expect(new TemplateMatcher('t://{+rest}').matches(`t://${'a'.repeat(10_000)}`)).toBe(false);
    expect(() => new TemplateMatcher('t://{open')).toThrow(/unclosed/);
    expect(() => new TemplateMatcher(`t://${'a'.repeat(3_000)}`)).toThrow(/longer than/);
  });
});

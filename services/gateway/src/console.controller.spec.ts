import { acceptsGzip } from './console.controller';

describe('acceptsGzip (Accept-Encoding of the console assets)', () => {
  it('takes gzip when named or covered by *, with a weight above zero', () => {
    const cases: Array<[string | undefined, boolean]> = [
      ['gzip, deflate, br', true],
      ['br;q=1.0, gzip;q=0.8', true],
      ['*', true],
      ['GZIP', true],
      ['gzip;q=0', false],
      ['*;q=0.5, gzip;q=0', false],
      ['br, *;q=0', false],
      ['identity', false],
      ['', false],
      [undefined, false],
    ];
    expect(cases.map(([header]) => acceptsGzip(header))).toEqual(cases.map(([, expected]) => expected));
  });
});

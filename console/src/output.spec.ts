import { splitOutput } from './output';

const PNG = 'iVBORw0KGgo=';

describe('splitOutput', () => {
  it('finds images nested anywhere (a task output holds its steps\' content) and notes them in the JSON instead of their data', () => {
    const out = splitOutput({ style: 'cel-shaded', images: [[{ type: 'text', text: 'here' }, { type: 'image', mimeType: 'image/png', data: PNG }]], review: 'ok' });
    expect(out.images).toEqual([{ src: `data:image/png;base64,${PNG}`, mimeType: 'image/png' }]);
    expect(out.text).toBe('');
    expect(out.rest).toEqual({ style: 'cel-shaded', images: [[{ type: 'text', text: 'here' }, { type: 'image', mimeType: 'image/png', data: '(image/png, 9 bytes)' }]], review: 'ok' });
  });

  it('takes the text of an MCP result from its text items and leaves the rest', () => {
    const out = splitOutput({ content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }], isError: false });
    expect(out).toEqual({ text: 'a\nb', images: [], rest: { isError: false } });
    expect(splitOutput({ text: 'only' })).toEqual({ text: 'only', images: [], rest: undefined });
    expect(splitOutput('plain')).toEqual({ text: 'plain', images: [], rest: undefined });
  });

  it('shows no image of a type that can carry script, or whose data is not base64', () => {
    const out = splitOutput({ content: [{ type: 'image', mimeType: 'image/svg+xml', data: 'PHN2Zz4=' }, { type: 'image', mimeType: 'image/png', data: 'x" onerror="alert(1)' }] });
    expect(out.images).toEqual([]);
  });
});

import { toolOutput } from './tool-output';

describe('toolOutput', () => {
  it('joins text blocks and keeps content, error flag and structured content', () => {
    const out = toolOutput({
      content: [
        { type: 'text', text: 'a' },
        { type: 'image', data: 'x', mimeType: 'image/png' },
        { type: 'text', text: 'b' },
      ],
      structuredContent: { n: 1 },
    });
    expect(out).toEqual({
      text: 'a\nb',
      content: [
        { type: 'text', text: 'a' },
        { type: 'image', data: 'x', mimeType: 'image/png' },
        { type: 'text', text: 'b' },
      ],
      isError: false,
      structuredContent: { n: 1 },
    });
  });

  it('marks tool errors and tolerates a result without content', () => {
    expect(toolOutput({ isError: true })).toEqual({ text: '', content: [], isError: true });
  });
});

/** Raster types only: an SVG can carry script, and nothing else is needed to show a generated image. */
const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
/** Deeper than any output the API gives; bounds the walk over what a tool returned. */
const MAX_DEPTH = 8;

export interface OutputImage {
  src: string;
  mimeType: string;
}

export interface SplitOutput {
  /** The output's text: `text`, or the text items of MCP `content`. */
  text: string;
  /** MCP image items found anywhere in the output (a task's output nests its steps' content). */
  images: OutputImage[];
  /** Everything else, with each image's data replaced by a short note; undefined when nothing is left. */
  rest: unknown;
}

function isImage(v: Record<string, unknown>): boolean {
  return v.type === 'image' && typeof v.mimeType === 'string' && typeof v.data === 'string';
}

/**
 * Splits an output for display. Images become data: URLs only when their type is a raster type and
 * their data is base64, so a forged item cannot break out of the attribute or load anything.
 */
export function splitOutput(value: unknown): SplitOutput {
  const images: OutputImage[] = [];
  const walk = (v: unknown, depth: number): unknown => {
    if (depth > MAX_DEPTH || v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1));
    const o = v as Record<string, unknown>;
    if (isImage(o)) {
      const data = o.data as string;
      const mimeType = o.mimeType as string;
      if (IMAGE_TYPES.has(mimeType) && BASE64.test(data)) images.push({ src: `data:${mimeType};base64,${data}`, mimeType });
      return { ...o, data: `(${mimeType}, ${Math.floor((data.length * 3) / 4).toLocaleString('en')} bytes)` };
    }
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, walk(x, depth + 1)]));
  };
  if (typeof value === 'string') return { text: value, images, rest: undefined };
  const record = value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  if (!record) return { text: '', images, rest: walk(value, 0) };
  const content = Array.isArray(record.content) ? (record.content as unknown[]) : [];
  const textItems = content.filter((c): c is { type: 'text'; text: string } => typeof c === 'object' && c !== null && (c as { type?: unknown }).type === 'text' && typeof (c as { text?: unknown }).text === 'string');
  const text = typeof record.text === 'string' ? record.text : textItems.map((c) => c.text).join('\n');
  // Text already shown above is not repeated in the JSON.
  const others = Object.fromEntries(
    Object.entries(record)
      .filter(([k]) => k !== 'text')
      .map(([k, v]) => [k, k === 'content' ? content.filter((c) => !textItems.includes(c as never)) : v])
      .filter(([k, v]) => !(k === 'content' && (v as unknown[]).length === 0)),
  );
  const rest = walk(others, 0) as Record<string, unknown>;
  return { text, images, rest: Object.keys(rest).length > 0 ? rest : undefined };
}

/**
 * A step's or a tool's output, as text only: strings in <pre>, images from base64 data as <img>
 * (raster types only), everything else as formatted JSON. React escapes all of it, so nothing a
 * tool returns can run as script in this page.
 */
const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

interface ContentItem {
  type?: unknown;
  text?: unknown;
  data?: unknown;
  mimeType?: unknown;
}

function items(value: unknown): ContentItem[] {
  return Array.isArray(value) ? value.filter((x): x is ContentItem => typeof x === 'object' && x !== null) : [];
}

export function Output({ value }: { value: unknown }) {
  if (value === null || value === undefined) return <span className="muted">—</span>;
  if (typeof value === 'string') return <pre className="output">{value}</pre>;
  const record = typeof value === 'object' ? (value as Record<string, unknown>) : {};
  const content = items(record.content);
  const images = content.filter((c) => c.type === 'image' && typeof c.mimeType === 'string' && IMAGE_TYPES.has(c.mimeType) && typeof c.data === 'string' && BASE64.test(c.data));
  const text = typeof record.text === 'string' ? record.text : content.filter((c) => c.type === 'text' && typeof c.text === 'string').map((c) => c.text as string).join('\n');
  const rest = Object.fromEntries(Object.entries(record).filter(([k]) => k !== 'text' && k !== 'content'));
  return (
    <div className="output-block">
      {text ? <pre className="output">{text}</pre> : null}
      {images.length > 0 ? (
        <div className="images">
          {images.map((c, i) => (
            <img key={i} alt={`image ${i + 1}`} src={`data:${String(c.mimeType)};base64,${String(c.data)}`} />
          ))}
        </div>
      ) : null}
      {Object.keys(rest).length > 0 ? <pre className="output json">{JSON.stringify(rest, null, 2)}</pre> : null}
      {!text && images.length === 0 && Object.keys(rest).length === 0 && content.length > 0 ? <pre className="output json">{JSON.stringify(content, null, 2)}</pre> : null}
    </div>
  );
}

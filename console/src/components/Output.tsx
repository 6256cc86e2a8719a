import { splitOutput } from '../output';

/**
 * A step's or a tool's output, as text only: its text in <pre>, images from base64 data as <img>
 * (raster types only), everything else as formatted JSON. React escapes all of it, so nothing a
 * tool returns can run as script in this page.
 */
export function Output({ value }: { value: unknown }) {
  if (value === null || value === undefined) return <span className="muted">—</span>;
  const { text, images, rest } = splitOutput(value);
  return (
    <div className="output-block">
      {text ? <pre className="output">{text}</pre> : null}
      {images.length > 0 ? (
        <div className="images">
          {images.map((img, i) => (
            <img key={i} alt={`image ${i + 1}`} src={img.src} />
          ))}
        </div>
      ) : null}
      {rest !== undefined ? <pre className="output json">{JSON.stringify(rest, null, 2)}</pre> : null}
    </div>
  );
}

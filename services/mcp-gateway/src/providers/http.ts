import { ZiggieError } from '@ziggie/contracts';

export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/**
 * fetch that refuses upstream bodies larger than maxBytes: by Content-Length up front, and by
 * counting while streaming otherwise. Event streams are exempt here (they are long-lived);
 * each result they carry is size-checked by the call path instead.
 */
export function limitedFetch(maxBytes: number, base: FetchLike = fetch): FetchLike {
  return async (input, init) => {
    const res = await base(input, init);
    if ((res.headers.get('content-type') ?? '').startsWith('text/event-stream') || !res.body) return res;
    const declared = Number(res.headers.get('content-length') ?? 'NaN');
    if (declared > maxBytes) {
      await res.body.cancel().catch(() => undefined);
      throw tooLarge(maxBytes);
    }
    let seen = 0;
    const counted = res.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          seen += chunk.byteLength;
          if (seen > maxBytes) controller.error(tooLarge(maxBytes));
          else controller.enqueue(chunk);
        },
      }),
    );
    return new Response(counted, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

export function tooLarge(maxBytes: number): ZiggieError {
  return new ZiggieError('UPSTREAM_RESPONSE_TOO_LARGE', `upstream response larger than ${maxBytes} bytes`, { maxBytes });
}

/** Throws when a JSON-serialisable result is larger than the limit. */
export function assertResultSize(result: unknown, maxBytes: number): void {
  if (Buffer.byteLength(JSON.stringify(result)) > maxBytes) throw tooLarge(maxBytes);
}

import { ZiggieError } from '@ziggie/contracts';

export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/**
 * fetch for upstream calls:
 * - refuses bodies larger than maxBytes, by Content-Length up front and by counting while
 *   streaming (event streams are long-lived, so they are exempt from the total; each result they
 *   carry is size-checked by the call path instead);
 * - gives every request its own AbortSignal, bridged from the caller's. The SDK's HTTP transports
 *   pass one connection-wide signal to every fetch, and undici leaves a listener on it per request
 *   until garbage collection: under load that grows without bound. The bridge is removed when the
 *   response body ends, fails or is cancelled.
 */
export function limitedFetch(maxBytes: number, base: FetchLike = fetch): FetchLike {
  return async (input, init) => {
    const parent = init?.signal ?? undefined;
    let unbridge = (): void => undefined;
    if (parent) {
      const own = new AbortController();
      const onAbort = (): void => own.abort(parent.reason);
      if (parent.aborted) own.abort(parent.reason);
      else parent.addEventListener('abort', onAbort, { once: true });
      unbridge = () => parent.removeEventListener('abort', onAbort);
      init = { ...init, signal: own.signal };
    }
    let res: Response;
    try {
      res = await base(input, init);
    } catch (err) {
      unbridge();
      throw err;
    }
    if (!res.body) {
      unbridge();
      return res;
    }
    const stream = (res.headers.get('content-type') ?? '').startsWith('text/event-stream');
    const declared = Number(res.headers.get('content-length') ?? 'NaN');
    if (!stream && declared > maxBytes) {
      unbridge();
      await res.body.cancel().catch(() => undefined);
      throw tooLarge(maxBytes);
    }
    const reader = res.body.getReader();
    let seen = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const { done, value } = await reader.read();
          if (done) {
            unbridge();
            controller.close();
            return;
          }
          seen += value.byteLength;
          if (!stream && seen > maxBytes) {
            unbridge();
            await reader.cancel().catch(() => undefined);
            controller.error(tooLarge(maxBytes));
            return;
          }
          controller.enqueue(value);
        } catch (err) {
          unbridge();
          controller.error(err);
        }
      },
      cancel(reason) {
        unbridge();
        return reader.cancel(reason);
      },
    });
    return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

export function tooLarge(maxBytes: number): ZiggieError {
  return new ZiggieError('UPSTREAM_RESPONSE_TOO_LARGE', `upstream response larger than ${maxBytes} bytes`, { maxBytes });
}

/** Throws when a JSON-serialisable result is larger than the limit. */
export function assertResultSize(result: unknown, maxBytes: number): void {
  if (Buffer.byteLength(JSON.stringify(result)) > maxBytes) throw tooLarge(maxBytes);
}

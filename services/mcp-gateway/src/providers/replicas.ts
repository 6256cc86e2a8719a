import { circuitBreaker, CircuitBreakerPolicy, CircuitState, ConsecutiveBreaker, handleWhen, isBrokenCircuitError } from 'cockatiel';
import { ZiggieError } from '@ziggie/contracts';
import type { ReplicaState } from './provider';

export interface BreakerOptions {
  /** Consecutive upstream failures that open the breaker. */
  failures: number;
  /** How long an open breaker fails fast before letting one trial call through. */
  halfOpenAfterMs: number;
}

export const DEFAULT_BREAKER: BreakerOptions = { failures: 5, halfOpenAfterMs: 10_000 };

export type BreakerStateName = ReplicaState['breaker'];

function stateName(state: CircuitState): BreakerStateName {
  if (state === CircuitState.Open || state === CircuitState.Isolated) return 'open';
  if (state === CircuitState.HalfOpen) return 'half-open';
  return 'closed';
}

interface Replica<T> {
  id: string;
  target: T;
  outstanding: number;
  breaker: CircuitBreakerPolicy;
  /** When the breaker last opened: cockatiel half-opens only inside execute(), so pick() must offer the replica again. */
  openedAt: number;
  isUp: () => boolean;
}

/**
 * The replicas of one upstream: each call goes to the live replica with the fewest
 * outstanding requests (ties rotate), through that replica's circuit breaker (cockatiel).
 * Only failures the predicate calls upstream failures count against a breaker: a tool that
 * answers with an error result, or refuses bad arguments, is a healthy upstream.
 */
export class ReplicaSet<T> {
  private readonly replicas: Replica<T>[] = [];
  private rotation = 0;

  constructor(
    private readonly upstream: string,
    private readonly isUpstreamFailure: (err: unknown) => boolean,
    private readonly breakerOptions: BreakerOptions = DEFAULT_BREAKER,
    private readonly onBreakerChange?: (replicaId: string, state: BreakerStateName) => void,
  ) {}

  add(id: string, target: T, isUp: () => boolean): void {
    const breaker = circuitBreaker(
      handleWhen((err) => this.isUpstreamFailure(err)),
      { halfOpenAfter: this.breakerOptions.halfOpenAfterMs, breaker: new ConsecutiveBreaker(this.breakerOptions.failures) },
    );
    const replica: Replica<T> = { id, target, outstanding: 0, breaker, openedAt: 0, isUp };
    breaker.onStateChange((s) => {
      if (s === CircuitState.Open) replica.openedAt = Date.now();
      this.onBreakerChange?.(id, stateName(s));
    });
    this.replicas.push(replica);
  }

  get targets(): T[] {
    return this.replicas.map((r) => r.target);
  }

  states(): ReplicaState[] {
    return this.replicas.map((r) => ({ id: r.id, up: r.isUp(), breaker: stateName(r.breaker.state), outstanding: r.outstanding }));
  }

  private pick(): Replica<T> {
    const n = this.replicas.length;
    let best: Replica<T> | undefined;
    let anyUp = false;
    for (let i = 0; i < n; i++) {
      const r = this.replicas[(this.rotation + i) % n]!;
      if (!r.isUp()) continue;
      anyUp = true;
      if (r.breaker.state === CircuitState.Isolated) continue;
      if (r.breaker.state === CircuitState.Open && Date.now() - r.openedAt < this.breakerOptions.halfOpenAfterMs) continue;
      if (!best || r.outstanding < best.outstanding) best = r;
    }
    this.rotation = (this.rotation + 1) % Math.max(n, 1);
    if (best) return best;
    if (anyUp) {
      throw new ZiggieError('UPSTREAM_CIRCUIT_OPEN', `upstream ${this.upstream}: every replica's circuit is open after repeated failures`, {
        retryAfterSeconds: Math.ceil(this.breakerOptions.halfOpenAfterMs / 1000),
      });
    }
    throw new ZiggieError('UPSTREAM_UNAVAILABLE', `upstream ${this.upstream} has no connected replica`);
  }

  /** Runs fn on the chosen replica, counting it as outstanding and through its breaker. */
  async run<R>(fn: (target: T, replicaId: string) => Promise<R>): Promise<R> {
    const replica = this.pick();
    replica.outstanding++;
    try {
      return await replica.breaker.execute(() => fn(replica.target, replica.id));
    } catch (err) {
      if (isBrokenCircuitError(err)) {
        // Half-open lets one trial call through; concurrent callers meanwhile fail fast.
        throw new ZiggieError('UPSTREAM_CIRCUIT_OPEN', `upstream ${this.upstream} replica ${replica.id}: circuit open`, {
          retryAfterSeconds: Math.ceil(this.breakerOptions.halfOpenAfterMs / 1000),
        });
      }
      throw err;
    } finally {
      replica.outstanding--;
    }
  }
}

import { RE2JS } from 're2js';

/**
 * Regular expressions that come from users (quality gates, JSON Schema `pattern` and
 * `patternProperties` in blueprints and output schemas, policy globs) run on RE2's linear-time
 * engine (re2js, pure JavaScript): matching takes time proportional to the text, whatever the
 * pattern, so no input can hold an event loop. RE2 syntax is JavaScript's without backreferences
 * and lookaround; a pattern it cannot take is refused when it is submitted (docs/orchestration.md).
 */
export interface UserPattern {
  readonly source: string;
  /** The first match in `text`, or undefined. */
  firstMatch(text: string): string | undefined;
  test(text: string): boolean;
}

/** Patterns are at most this long (a gate pattern or a schema `pattern`). */
export const MAX_PATTERN_LENGTH = 500;

const cache = new Map<string, UserPattern>();
const CACHE_SIZE = 1_000;

/** Why RE2 refuses a pattern (its own message, e.g. "invalid escape sequence: `\1`"), or undefined when it compiles. */
export function userPatternProblem(source: string, opts: { caseInsensitive?: boolean } = {}): string | undefined {
  if (source.length > MAX_PATTERN_LENGTH) return `longer than ${MAX_PATTERN_LENGTH} characters`;
  try {
    compileUserPattern(source, opts);
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message.replace(/^error parsing regexp: /, '') : String(err);
  }
}

/** Compiles a user's pattern for RE2; throws the engine's syntax error when it cannot. */
export function compileUserPattern(source: string, opts: { caseInsensitive?: boolean; dotAll?: boolean; multiline?: boolean } = {}): UserPattern {
  const flags = (opts.caseInsensitive ? RE2JS.CASE_INSENSITIVE : 0) | (opts.dotAll ? RE2JS.DOTALL : 0) | (opts.multiline ? RE2JS.MULTILINE : 0);
  const key = `${flags}/${source}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const re = RE2JS.compile(source, flags);
  const pattern: UserPattern = {
    source,
    firstMatch(text) {
      const m = re.matcher(text);
      return m.find() ? (m.group(0) ?? '') : undefined;
    },
    test: (text) => re.matcher(text).find(),
  };
  if (cache.size >= CACHE_SIZE) cache.clear();
  cache.set(key, pattern);
  return pattern;
}

/**
 * A RegExp-like factory for Ajv's `code.regExp` option, so JSON Schema `pattern` and
 * `patternProperties` run on RE2 too. Ajv passes `u` (RE2 is Unicode-aware already); other
 * flags are refused because RE2 does not have them.
 */
export function linearRegExp(source: string, flags = ''): { test(text: string): boolean } {
  for (const f of flags) {
    if (f !== 'u' && f !== 'i' && f !== 's' && f !== 'm') throw new Error(`regular expression flag ${f} is not supported`);
  }
  const p = compileUserPattern(source, { caseInsensitive: flags.includes('i'), dotAll: flags.includes('s'), multiline: flags.includes('m') });
  return { test: (text: string) => p.test(text) };
}

/** linearRegExp as Ajv's `code.regExp` engine (Ajv wants a `code` string for standalone output; only its presence matters here). */
export const AJV_RE2_ENGINE = Object.assign((source: string, flags: string) => linearRegExp(source, flags), { code: 'require("@ziggie/contracts").linearRegExp' });

/**
 * `comfyui.*` style globs: `*` matches any run of characters, everything else literally. Matched
 * with the greedy two-pointer algorithm (O(pattern × value) at worst, no backtracking blow-up);
 * written here because glob libraries compile to backtracking JavaScript regular expressions.
 */
export function globMatches(pattern: string, value: string): boolean {
  if (!pattern.includes('*')) return pattern === value;
  let p = 0;
  let v = 0;
  let star = -1;
  let resume = 0;
  while (v < value.length) {
    if (p < pattern.length && pattern[p] !== '*' && pattern[p] === value[v]) {
      p++;
      v++;
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      resume = v;
    } else if (star >= 0) {
      p = star + 1;
      v = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}

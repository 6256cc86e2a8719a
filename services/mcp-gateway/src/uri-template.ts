import { compileUserPattern, type UserPattern } from '@ziggie/contracts';

/** URIs longer than this are not matched against templates (none of an MCP server's is). */
export const MAX_TEMPLATE_URI_LENGTH = 8_192;
const MAX_TEMPLATE_LENGTH = 2_048;

/** Literal text of a template, escaped for RE2. */
function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The pattern of one `{…}` expression, as RFC 6570 expands it (the SDK's UriTemplate reads the same shapes). */
function expression(body: string): string {
  const operator = /^[+#./;?&]/.test(body) ? body[0]! : '';
  const names = body
    .slice(operator.length)
    .split(',')
    .map((n) => n.trim())
    .filter(Boolean);
  const exploded = names.some((n) => n.endsWith('*'));
  switch (operator) {
    case '?':
    case '&':
      return names.map((n, i) => `${i === 0 ? `\\${operator}` : '&'}${literal(n.replace(/\*$/, ''))}=[^&]+`).join('');
    case '+':
    case '#':
      return '.+';
    case '.':
      return '\\.[^/,]+';
    case '/':
      return `/${exploded ? '[^/,]+(?:,[^/,]+)*' : '[^/,]+'}`;
    case '':
      return exploded ? '[^/,]+(?:,[^/,]+)*' : '[^/,]+';
    default:
      return '[^/]+';
  }
}

/**
 * Whether a URI can come from an upstream's resource template, to route a read, a subscription
 * or a completion to the server that owns it. The SDK's UriTemplate.match builds a backtracking
 * RegExp (a template such as `{+a}{+b}{+c}` is polynomial in the URI's length, and the URI is the
 * caller's), so the same pattern is compiled for RE2 here and matched in linear time.
 */
export class TemplateMatcher {
  private readonly pattern: UserPattern;

  constructor(template: string) {
    if (template.length > MAX_TEMPLATE_LENGTH) throw new Error(`URI template longer than ${MAX_TEMPLATE_LENGTH} characters`);
    let source = '^';
    let rest = template;
    while (rest.length > 0) {
      const open = rest.indexOf('{');
      if (open < 0) {
        source += literal(rest);
        break;
      }
      const close = rest.indexOf('}', open);
      if (close < 0) throw new Error(`unclosed expression in URI template ${template}`);
      source += literal(rest.slice(0, open)) + expression(rest.slice(open + 1, close));
      rest = rest.slice(close + 1);
    }
    this.pattern = compileUserPattern(`${source}$`);
  }

  matches(uri: string): boolean {
    return uri.length <= MAX_TEMPLATE_URI_LENGTH && this.pattern.test(uri);
  }
}

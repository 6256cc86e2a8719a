/**
 * A step's output from an MCP CallToolResult: the result itself plus `text`, the text
 * blocks joined, so later steps can reference `{{steps.<id>.output.text}}`.
 */
export function toolOutput(result: Record<string, unknown>): Record<string, unknown> {
  const content = Array.isArray(result.content) ? (result.content as Array<{ type?: string; text?: string }>) : [];
  const text = content
    .filter((c) => c.type === 'text' && typeof c.text === 'string')
    .map((c) => c.text)
    .join('\n');
  return {
    text,
    content,
    isError: result.isError === true,
    ...(result.structuredContent !== undefined ? { structuredContent: result.structuredContent } : {}),
  };
}

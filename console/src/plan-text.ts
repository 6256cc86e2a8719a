/** The line of a plan's text where a step is defined, so an error about it points there. */
export function lineOfStep(text: string, stepId: string): number | null {
  const needle = new RegExp(`"id"\\s*:\\s*${JSON.stringify(stepId).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`);
  const i = text.split('\n').findIndex((line) => needle.test(line));
  return i >= 0 ? i + 1 : null;
}

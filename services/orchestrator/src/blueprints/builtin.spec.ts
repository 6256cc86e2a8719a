import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { BlueprintSchema, PlanStep, ZiggieError } from '@ziggie/contracts';
import { checkQualityGate } from '../quality';
import { resolveInput } from '../templates';
import { BUILTIN_BLUEPRINTS, BUILTIN_VERSION, IMAGE_TOOLS } from './builtin';
import { checkOutput, expandBlueprint, validateBlueprint } from './expand';

const byName = (name: string) => {
  const b = BUILTIN_BLUEPRINTS.find((x) => x.name === name);
  if (!b) throw new Error(`no built-in ${name}`);
  return b;
};
const characters = byName('character-variations');
const comic = byName('comic-strip');

const step = (steps: PlanStep[], id: string): PlanStep => {
  const s = steps.find((x) => x.id === id);
  if (!s) throw new Error(`no step ${id} in ${steps.map((x) => x.id).join(', ')}`);
  return s;
};

function inputError(fn: () => unknown): ZiggieError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ZiggieError && err.code === 'BLUEPRINT_INPUT_INVALID') return err;
    throw err;
  }
  throw new Error('expected BLUEPRINT_INPUT_INVALID');
}

/** A tool step's output as the agent runtime records it (tool-output.ts). */
const toolOutput = (text: string) => ({ text, content: [{ type: 'text', text }], isError: false });

describe('built-in blueprints', () => {
  it('are the two of the issue, at version 1.0.0, each with input and output schemas and outputs', () => {
    expect(BUILTIN_BLUEPRINTS.map((b) => `${b.name}@${b.version}`)).toEqual(['character-variations@1.0.0', 'comic-strip@1.0.0']);
    expect(BUILTIN_VERSION).toBe('1.0.0');
    for (const b of BUILTIN_BLUEPRINTS) {
      expect(BlueprintSchema.safeParse(b).success).toBe(true);
      expect(b.outputSchema).toBeDefined();
      expect(Object.keys(b.outputs).length).toBeGreaterThan(0);
      expect(() => validateBlueprint(b)).not.toThrow();
    }
  });

  it('name tools the bundled MCP servers really have', () => {
    const dist = (pkg: string) => join(dirname(require.resolve(`${pkg}/package.json`)), 'dist');
    const everything = readdirSync(join(dist('@modelcontextprotocol/server-everything'), 'tools'))
      .filter((f) => f.endsWith('.js'))
      .map((f) => readFileSync(join(dist('@modelcontextprotocol/server-everything'), 'tools', f), 'utf8'))
      .join('\n');
    const filesystem = readFileSync(join(dist('@modelcontextprotocol/server-filesystem'), 'index.js'), 'utf8');
    const used = new Set<string>();
    for (const b of BUILTIN_BLUEPRINTS) {
      for (const s of b.template.steps) {
        const tool = s.input.tool;
        for (const name of Array.isArray(tool) ? tool : [tool]) used.add(String(name));
      }
    }
    for (const name of used) {
      const [server, tool] = name.split('.');
      if (server === 'everything') expect(everything).toContain(`const name = "${tool}";`);
      else if (server === 'files') expect(filesystem).toContain(`registerTool("${tool}"`);
      else expect(['comfyui.run_workflow', 'ziggie.noop']).toContain(name);
    }
    expect([...used].sort()).toEqual(
      ['comfyui.run_workflow', 'everything.echo', 'everything.get-tiny-image', 'files.create_directory', 'files.write_file', 'ziggie.noop'].sort(),
    );
  });
});

describe('character-variations', () => {
  it('expands with its defaults into define-style → 4 GPU copies → qa', () => {
    const { plan, inputs, outputs } = expandBlueprint(characters, { character: 'a cat warrior' });
    expect(inputs).toEqual({ character: 'a cat warrior', style: 'cel-shaded', variations: 4, checkpoint: 'sd_xl_base_1.0.safetensors' });
    expect(plan.steps.map((s) => s.id)).toEqual(['define-style', 'generate-1', 'generate-2', 'generate-3', 'generate-4', 'qa']);
    expect(step(plan.steps, 'define-style')).toMatchObject({ capability: 'design', dependsOn: [] });

    for (let i = 1; i <= 4; i++) {
      const g = step(plan.steps, `generate-${i}`);
      expect(g).toMatchObject({ capability: 'art', gpu: true, pool: 'gpu', dependsOn: ['define-style'] });
      expect(g.input.tool).toEqual(['comfyui.run_workflow', 'everything.get-tiny-image']);
      const workflow = (g.input.arguments as { workflow: Record<string, { class_type: string; inputs: Record<string, unknown> }> }).workflow;
      const sampler = Object.values(workflow).find((n) => n.class_type === 'KSampler')!;
      expect(sampler.inputs.seed).toBe(i);
      const prompt = Object.values(workflow).find((n) => n.class_type === 'CLIPTextEncode')!;
      expect(prompt.inputs.text).toBe(`a cat warrior, variation ${i} of 4, cel-shaded. {{steps.define-style.output.text}}`);
      expect(Object.values(workflow).find((n) => n.class_type === 'SaveImage')!.inputs.filename_prefix).toBe(`ziggie/character-variations/{{task.id}}/variation-${i}`);
    }

    const qa = step(plan.steps, 'qa');
    expect(qa).toMatchObject({ capability: 'qa', dependsOn: ['generate-1', 'generate-2', 'generate-3', 'generate-4'] });
    expect((qa.input.arguments as { message: string }).message).toBe(
      'Review of 4 variations of a cat warrior:\n' + [1, 2, 3, 4].map((i) => `{{steps.generate-${i}.output.text}}`).join('\n'),
    );
    expect(qa.qualityGate).toBeDefined();
    expect(outputs).toEqual({
      character: 'a cat warrior',
      style: 'cel-shaded',
      images: [1, 2, 3, 4].map((i) => `{{steps.generate-${i}.output.content}}`),
      review: '{{steps.qa.output.text}}',
    });
  });

  it('expands with explicit inputs', () => {
    const { plan } = expandBlueprint(characters, { character: 'a robot', style: 'pixel art', variations: 2, checkpoint: 'other.safetensors' });
    expect(plan.steps.map((s) => s.id)).toEqual(['define-style', 'generate-1', 'generate-2', 'qa']);
    const workflow = JSON.stringify(step(plan.steps, 'generate-2').input);
    expect(workflow).toContain('a robot, variation 2 of 2, pixel art.');
    expect(workflow).toContain('"ckpt_name":"other.safetensors"');
    expect((step(plan.steps, 'define-style').input.arguments as { message: string }).message).toContain('a robot: pixel art; one silhouette');
  });

  it.each([
    [{}, '/character', 'is required'],
    [{ character: '' }, '/character', 'must NOT have fewer than 1 characters'],
    [{ character: 'x', variations: 0 }, '/variations', 'must be >= 1'],
    [{ character: 'x', variations: 17 }, '/variations', 'must be <= 16'],
    [{ character: 'x', variations: 2.5 }, '/variations', 'must be integer'],
    [{ character: 'x', mood: 'happy' }, '/mood', 'is not allowed (unknown property)'],
  ])('refuses inputs %j', (inputs, path, message) => {
    expect(inputError(() => expandBlueprint(characters, inputs)).extras.errors).toContainEqual({ path, message });
  });

  it('checks its task output', () => {
    const ok = { character: 'c', style: 's', images: [[{ type: 'image' }]], review: 'fine' };
    expect(checkOutput(characters, ok)).toBeUndefined();
    expect(checkOutput(characters, { ...ok, images: [] })).toContain('/images must NOT have fewer than 1 items');
  });

  it("has a QA gate that refuses a ComfyUI run that wrote no file and passes the bundled image's text", () => {
    const gate = characters.template.steps.find((s) => s.id === 'qa')!.qualityGate;
    expect(checkQualityGate(gate, toolOutput('Echo: Review:\nComfyUI workflow p1 finished with 0 file(s).'))).toMatch(/rejected content/);
    expect(checkQualityGate(gate, toolOutput("Echo: Review of 2 variations of x:\nHere's the image you requested:\nThe image above is the MCP logo."))).toBeUndefined();
  });
});

describe('comic-strip', () => {
  it('expands with its defaults: validation and moderation, storyboard, 3 GPU panels, narration and subtitles, bundle', () => {
    const { plan, inputs, outputs } = expandBlueprint(comic, { prompt: 'A moody idol finds a puppy' });
    expect(inputs).toEqual({ prompt: 'A moody idol finds a puppy', panels: 3, title: 'Untitled comic', checkpoint: 'sd_xl_base_1.0.safetensors' });
    expect(plan.steps.map((s) => [s.id, s.dependsOn])).toEqual([
      ['validate-prompt', []],
      ['moderate', []],
      ['storyboard', ['validate-prompt', 'moderate']],
      ['bundle-dir', ['validate-prompt', 'moderate']],
      ['panels-1', ['storyboard']],
      ['panels-2', ['storyboard']],
      ['panels-3', ['storyboard']],
      ['narration', ['panels-1', 'panels-2', 'panels-3']],
      ['subtitles', ['panels-1', 'panels-2', 'panels-3']],
      ['metadata', ['narration', 'subtitles', 'bundle-dir']],
      ['assemble', ['metadata']],
    ]);
    for (const id of ['panels-1', 'panels-2', 'panels-3']) {
      expect(step(plan.steps, id)).toMatchObject({ capability: 'art', gpu: true, pool: 'gpu', input: { tool: [...IMAGE_TOOLS] } });
    }
    expect(step(plan.steps, 'moderate').input.arguments).toEqual({ message: 'Untitled comic\nA moody idol finds a puppy' });
    expect(step(plan.steps, 'bundle-dir').input).toEqual({ tool: 'files.create_directory', arguments: { path: 'bundles/{{task.id}}' } });
    expect(step(plan.steps, 'subtitles').input.arguments).toEqual({
      message: 'Subtitles, one line per panel:\n{{steps.panels-1.output.text}}\n{{steps.panels-2.output.text}}\n{{steps.panels-3.output.text}}',
    });
    expect(step(plan.steps, 'metadata').input).toEqual({
      tool: 'ziggie.noop',
      arguments: {
        title: 'Untitled comic',
        prompt: 'A moody idol finds a puppy',
        panels: ['{{steps.panels-1.output.content}}', '{{steps.panels-2.output.content}}', '{{steps.panels-3.output.content}}'],
        narration: '{{steps.narration.output.text}}',
        subtitles: '{{steps.subtitles.output.text}}',
      },
    });
    expect(step(plan.steps, 'assemble').input).toMatchObject({ tool: 'files.write_file', arguments: { path: 'bundles/{{task.id}}/metadata.json' } });
    expect(outputs).toEqual({ bundle: 'bundles/{{task.id}}/metadata.json', metadata: '{{steps.metadata.output.echo}}' });
  });

  it('expands with explicit inputs', () => {
    const { plan, outputs } = expandBlueprint(comic, { prompt: 'Robots at sea', panels: 5, title: 'Tin Sailors' });
    expect(plan.steps.filter((s) => s.id.startsWith('panels-')).map((s) => s.id)).toEqual(['panels-1', 'panels-2', 'panels-3', 'panels-4', 'panels-5']);
    expect(step(plan.steps, 'narration').dependsOn).toHaveLength(5);
    expect(JSON.stringify(step(plan.steps, 'panels-4').input)).toContain('Comic panel 4 of 5, \\"Tin Sailors\\".');
    expect((step(plan.steps, 'metadata').input.arguments as { panels: string[] }).panels).toHaveLength(5);
    expect(outputs.bundle).toBe('bundles/{{task.id}}/metadata.json');
  });

  it.each([
    ['no prompt', {}, '/prompt', 'is required'],
    ['a 2-character prompt', { prompt: 'hi' }, '/prompt', 'must NOT have fewer than 3 characters'],
    ['a 501-character prompt', { prompt: 'x'.repeat(501) }, '/prompt', 'must NOT have more than 500 characters'],
    ['0 panels', { prompt: 'a story', panels: 0 }, '/panels', 'must be >= 1'],
    ['9 panels', { prompt: 'a story', panels: 9 }, '/panels', 'must be <= 8'],
    ['an empty title', { prompt: 'a story', title: '' }, '/title', 'must NOT have fewer than 1 characters'],
  ])('refuses %s', (_what, inputs, path, message) => {
    expect(inputError(() => expandBlueprint(comic, inputs)).extras.errors).toContainEqual({ path, message });
  });

  it('moderates the title and prompt with a reason, and validates the prompt as plain text', () => {
    const gate = (id: string) => comic.template.steps.find((s) => s.id === id)!.qualityGate;
    const moderate = (title: string, prompt: string) => checkQualityGate(gate('moderate'), toolOutput(`Echo: ${title}\n${prompt}`));
    expect(moderate('Untitled comic', 'A moody idol finds a puppy in the rain')).toBeUndefined();
    expect(moderate('Untitled comic', 'A GORY fight scene')).toBe('output contains rejected content "GORY" (pattern "\\\\bgor(?:e|y)\\\\b")');
    expect(moderate('NSFW special', 'a quiet walk')).toMatch(/^output contains rejected content "NSFW"/);
    expect(moderate('Untitled', 'a story about gorillas')).toBeUndefined();

    const validate = (prompt: string) => checkQualityGate(gate('validate-prompt'), toolOutput(`Echo: ${prompt}`));
    expect(validate('a <script>alert(1)</script> story')).toMatch(/rejected content "<script>"/);
    expect(validate('see https://example.com')).toMatch(/rejected content "https:\/\/"/);
    expect(validate('when a < b and c > d, a cat smiles')).toBeUndefined();
  });

  it('writes metadata.json as valid JSON whatever the texts hold, once the orchestrator resolves the references', () => {
    const title = 'The "Quote" \\ Saga';
    const prompt = 'Line one\nline "two"';
    const { plan, outputs } = expandBlueprint(comic, { prompt, title, panels: 2 });
    const outs = new Map<string, unknown>([
      ['panels-1', { ...toolOutput('panel "1"'), content: [{ type: 'image', data: 'AAA', mimeType: 'image/png' }] }],
      ['panels-2', toolOutput('panel 2\nwith a newline')],
      ['narration', toolOutput('Echo: Narration "quoted"')],
      ['subtitles', toolOutput('Echo: Subtitles\nline 2')],
    ]);
    const ctx = { taskId: 'tsk_0123' };
    // The metadata step's arguments, resolved at dispatch, come back as its output's `echo` (ziggie.noop).
    const collected = resolveInput(step(plan.steps, 'metadata').input.arguments, outs, ctx);
    outs.set('metadata', { text: 'ok', echo: collected });
    const write = resolveInput(step(plan.steps, 'assemble').input.arguments as Record<string, unknown>, outs, ctx);
    expect(write.path).toBe('bundles/tsk_0123/metadata.json');
    expect(typeof write.content).toBe('string');
    expect(JSON.parse(write.content as string)).toEqual({
      taskId: 'tsk_0123',
      blueprint: 'comic-strip@1.0.0',
      comic: {
        title,
        prompt,
        panels: [[{ type: 'image', data: 'AAA', mimeType: 'image/png' }], [{ type: 'text', text: 'panel 2\nwith a newline' }]],
        narration: 'Echo: Narration "quoted"',
        subtitles: 'Echo: Subtitles\nline 2',
      },
    });

    const output = resolveInput(outputs, outs, ctx);
    expect(output.bundle).toBe('bundles/tsk_0123/metadata.json');
    expect(checkOutput(comic, output)).toBeUndefined();
    expect(checkOutput(comic, { ...output, bundle: '/etc/passwd' })).toContain('/bundle must match pattern');
  });
});

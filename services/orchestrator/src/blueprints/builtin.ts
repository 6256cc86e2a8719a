/**
 * The built-in blueprints, installed at start-up. Tool steps name candidates in order of
 * preference (the agent runtime calls the first one the MCP gateway's catalog has): the real
 * backend first (ComfyUI through the gateway's adapter), then a tool of the bundled MCP servers,
 * so both blueprints run on a bare local stack and use the GPU backend where one is configured.
 */
import { Blueprint, BlueprintSchema } from '@ziggie/contracts';
import type { z } from 'zod';

type BlueprintData = z.input<typeof BlueprintSchema>;

export const BUILTIN_VERSION = '1.0.0';

/** ComfyUI (`transport: comfyui`, server name `comfyui`), else the bundled server's tiny image. */
export const IMAGE_TOOLS = ['comfyui.run_workflow', 'everything.get-tiny-image'] as const;
const ECHO = 'everything.echo';
/** The filesystem server the local stack registers as `files`, rooted at `<data dir>/artifacts`. */
const MKDIR = 'files.create_directory';
const WRITE_FILE = 'files.write_file';
/** Built into the agent runtime: succeeds with its arguments as `output.echo`. */
const COLLECT = 'ziggie.noop';

const GPU_STEP_TIMEOUT_MS = 600_000;
const DEFAULT_CHECKPOINT = 'sd_xl_base_1.0.safetensors';

const checkpointInput = {
  type: 'string',
  minLength: 1,
  maxLength: 200,
  default: DEFAULT_CHECKPOINT,
  description: 'ComfyUI checkpoint, used when a ComfyUI backend is configured',
};

/** A text-to-image workflow in ComfyUI's API format; values may hold template placeholders. */
export function txt2imgWorkflow(o: { prompt: string; negative: string; seed: string; filenamePrefix: string; checkpoint: string }): Record<string, unknown> {
  return {
    '1': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: o.checkpoint } },
    '2': { class_type: 'CLIPTextEncode', inputs: { text: o.prompt, clip: ['1', 1] } },
    '3': { class_type: 'CLIPTextEncode', inputs: { text: o.negative, clip: ['1', 1] } },
    '4': { class_type: 'EmptyLatentImage', inputs: { width: 1024, height: 1024, batch_size: 1 } },
    '5': {
      class_type: 'KSampler',
      inputs: {
        seed: o.seed,
        steps: 25,
        cfg: 7,
        sampler_name: 'euler',
        scheduler: 'normal',
        denoise: 1,
        model: ['1', 0],
        positive: ['2', 0],
        negative: ['3', 0],
        latent_image: ['4', 0],
      },
    },
    '6': { class_type: 'VAEDecode', inputs: { samples: ['5', 0], vae: ['1', 2] } },
    '7': { class_type: 'SaveImage', inputs: { filename_prefix: o.filenamePrefix, images: ['6', 0] } },
  };
}

const NEGATIVE = 'blurry, low quality, deformed, watermark, text';

const characterVariations: BlueprintData = {
  name: 'character-variations',
  version: BUILTIN_VERSION,
  description:
    'Character variations in three waves: define a style guide, generate N variations in parallel on the GPU pool ' +
    '(ComfyUI when configured, the bundled test image otherwise), then review them behind a quality gate.',
  inputSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['character'],
    properties: {
      character: { type: 'string', minLength: 1, maxLength: 300, description: 'Who to draw', examples: ['a cat warrior in copper armour'] },
      style: { type: 'string', minLength: 1, maxLength: 200, default: 'cel-shaded', description: 'Art style shared by every variation' },
      variations: { type: 'integer', minimum: 1, maximum: 16, default: 4, description: 'How many variations to generate' },
      checkpoint: checkpointInput,
    },
  },
  outputSchema: {
    type: 'object',
    required: ['character', 'style', 'images', 'review'],
    properties: {
      character: { type: 'string' },
      style: { type: 'string' },
      images: { type: 'array', minItems: 1, items: { type: 'array' }, description: "Each variation's content (image, or file references)" },
      review: { type: 'string', minLength: 1 },
    },
  },
  template: {
    steps: [
      {
        id: 'define-style',
        capability: 'design',
        input: {
          tool: ECHO,
          arguments: {
            message: 'Style guide for {{inputs.character}}: {{inputs.style}}; one silhouette, palette and line weight across all {{inputs.variations}} variations.',
          },
        },
        qualityGate: { minTextLength: 20 },
      },
      {
        id: 'generate',
        capability: 'art',
        dependsOn: ['define-style'],
        fanOut: { count: '{{inputs.variations}}' },
        gpu: true,
        pool: 'gpu',
        retries: 1,
        retryBackoff: 2_000,
        timeout: GPU_STEP_TIMEOUT_MS,
        input: {
          tool: [...IMAGE_TOOLS],
          arguments: {
            workflow: txt2imgWorkflow({
              prompt: '{{inputs.character}}, variation {{fanOut.index}} of {{inputs.variations}}, {{inputs.style}}. {{steps.define-style.output.text}}',
              negative: NEGATIVE,
              // A different seed per copy: the variations differ, and a retry redraws the same one.
              seed: '{{fanOut.index}}',
              filenamePrefix: 'ziggie/character-variations/{{task.id}}/variation-{{fanOut.index}}',
              checkpoint: '{{inputs.checkpoint}}',
            }),
          },
        },
      },
      {
        id: 'qa',
        capability: 'qa',
        dependsOn: ['generate'],
        input: {
          tool: ECHO,
          arguments: { message: 'Review of {{inputs.variations}} variations of {{inputs.character}}:\n{{steps.generate.output.text}}' },
        },
        // A ComfyUI run whose output nodes wrote nothing is not a variation.
        qualityGate: { rejectPatterns: ['finished with 0 file'], minTextLength: 20 },
      },
    ],
  },
  outputs: {
    character: '{{inputs.character}}',
    style: '{{inputs.style}}',
    images: '{{steps.generate.output.content}}',
    review: '{{steps.qa.output.text}}',
  },
};

/** Words the moderation gate refuses (case-insensitive, whole words); a deployment publishes its own version for a stricter list. */
export const DISALLOWED_WORDS = ['nsfw', 'porn\\w*', 'nud(?:e|ity)', 'gor(?:e|y)', 'behead\\w*', 'tortur\\w*', 'self-harm', 'suicid\\w*'] as const;

const comicStrip: BlueprintData = {
  name: 'comic-strip',
  version: BUILTIN_VERSION,
  description:
    'A comic strip from a prompt: validate and moderate the prompt, storyboard it, draw the panels in parallel on the GPU pool, ' +
    'write narration and subtitles, and save the bundle with metadata.json under bundles/<task id>/ of the files server.',
  inputSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['prompt'],
    properties: {
      prompt: { type: 'string', minLength: 3, maxLength: 500, description: 'The story', examples: ['A moody K-pop idol finds a puppy in the rain'] },
      panels: { type: 'integer', minimum: 1, maximum: 8, default: 3, description: 'Number of panels' },
      title: { type: 'string', minLength: 1, maxLength: 120, default: 'Untitled comic' },
      checkpoint: checkpointInput,
    },
  },
  outputSchema: {
    type: 'object',
    required: ['bundle', 'metadata'],
    properties: {
      bundle: { type: 'string', pattern: '^bundles/[^/]+/metadata\\.json$', description: 'Path of metadata.json under the files server root' },
      metadata: {
        type: 'object',
        required: ['title', 'prompt', 'panels', 'narration', 'subtitles'],
        properties: {
          title: { type: 'string' },
          prompt: { type: 'string' },
          panels: { type: 'array', minItems: 1 },
          narration: { type: 'string' },
          subtitles: { type: 'string' },
        },
      },
    },
  },
  template: {
    steps: [
      {
        id: 'validate-prompt',
        capability: 'qa',
        input: { tool: ECHO, arguments: { message: '{{inputs.prompt}}' } },
        // Prompts are plain text: no markup, no links.
        qualityGate: { rejectPatterns: ['</?[a-z][a-z0-9-]*(?:\\s[^<>]*)?/?>', 'https?://', '\\bwww\\.'] },
      },
      {
        id: 'moderate',
        capability: 'qa',
        input: { tool: ECHO, arguments: { message: '{{inputs.title}}\n{{inputs.prompt}}' } },
        qualityGate: { rejectPatterns: DISALLOWED_WORDS.map((w) => `\\b${w}\\b`) },
      },
      {
        id: 'storyboard',
        capability: 'content',
        dependsOn: ['validate-prompt', 'moderate'],
        input: { tool: ECHO, arguments: { message: 'Storyboard of "{{inputs.title}}" in {{inputs.panels}} panels: {{inputs.prompt}}' } },
      },
      {
        // write_file does not create directories.
        id: 'bundle-dir',
        capability: 'ops',
        dependsOn: ['validate-prompt', 'moderate'],
        input: { tool: MKDIR, arguments: { path: 'bundles/{{task.id}}' } },
      },
      {
        id: 'panels',
        capability: 'art',
        dependsOn: ['storyboard'],
        fanOut: { count: '{{inputs.panels}}' },
        gpu: true,
        pool: 'gpu',
        retries: 1,
        retryBackoff: 2_000,
        timeout: GPU_STEP_TIMEOUT_MS,
        input: {
          tool: [...IMAGE_TOOLS],
          arguments: {
            workflow: txt2imgWorkflow({
              prompt: 'Comic panel {{fanOut.index}} of {{inputs.panels}}, "{{inputs.title}}". {{steps.storyboard.output.text}}',
              negative: NEGATIVE,
              seed: '{{fanOut.index}}',
              filenamePrefix: 'ziggie/comic-strip/{{task.id}}/panel-{{fanOut.index}}',
              checkpoint: '{{inputs.checkpoint}}',
            }),
          },
        },
      },
      {
        id: 'narration',
        capability: 'content',
        dependsOn: ['panels'],
        input: { tool: ECHO, arguments: { message: 'Narration of "{{inputs.title}}": {{steps.storyboard.output.text}}' } },
      },
      {
        id: 'subtitles',
        capability: 'content',
        dependsOn: ['panels'],
        input: { tool: ECHO, arguments: { message: 'Subtitles, one line per panel:\n{{steps.panels.output.text}}' } },
      },
      {
        // Gathers the metadata as structured data; written below as JSON text, so every value is escaped properly.
        id: 'metadata',
        capability: 'data',
        dependsOn: ['narration', 'subtitles', 'bundle-dir'],
        input: {
          tool: COLLECT,
          arguments: {
            title: '{{inputs.title}}',
            prompt: '{{inputs.prompt}}',
            panels: '{{steps.panels.output.content}}',
            narration: '{{steps.narration.output.text}}',
            subtitles: '{{steps.subtitles.output.text}}',
          },
        },
      },
      {
        id: 'assemble',
        capability: 'ops',
        dependsOn: ['metadata'],
        input: {
          tool: WRITE_FILE,
          arguments: {
            // Relative to the files server's root. A reference that is the whole string would stay an object, and the tool takes text:
            // the wrapper makes it text, JSON-encoded by the dispatch-time resolution.
            path: 'bundles/{{task.id}}/metadata.json',
            content: `{"taskId":"{{task.id}}","blueprint":"comic-strip@${BUILTIN_VERSION}","comic":{{steps.metadata.output.echo}}}`,
          },
        },
      },
    ],
  },
  outputs: {
    bundle: 'bundles/{{task.id}}/metadata.json',
    metadata: '{{steps.metadata.output.echo}}',
  },
};

export const BUILTIN_BLUEPRINTS: readonly Blueprint[] = [characterVariations, comicStrip].map((b) => BlueprintSchema.parse(b));

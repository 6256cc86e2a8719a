import { Blueprint, BlueprintSchema, MAX_FAN_OUT, ZiggieError } from '@ziggie/contracts';
import { checkOutput, exampleValue, expandBlueprint, validateBlueprint } from './expand';

type Data = Parameters<typeof BlueprintSchema.parse>[0];

function bp(partial: Partial<Record<keyof Blueprint, unknown>> & { steps: unknown[] }): Blueprint {
  const { steps, ...rest } = partial;
  return BlueprintSchema.parse({ name: 'test-bp', version: '1.0.0', ...rest, template: { steps } } as Data);
}

function thrown(fn: () => unknown): ZiggieError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ZiggieError) return err;
    throw err;
  }
  throw new Error('expected a ZiggieError, nothing was thrown');
}

const echo = (message: unknown) => ({ tool: 'everything.echo', arguments: { message } });

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: { type: 'string', minLength: 2 },
    count: { type: 'integer', minimum: 1, maximum: 10, default: 3 },
    tags: { type: 'array', items: { type: 'string' } },
    options: { type: 'object', properties: { size: { type: 'integer' } } },
    email: { type: 'string', format: 'email' },
    optional: { type: 'string' },
  },
};

describe('expandBlueprint: parameters', () => {
  const blueprint = bp({
    inputSchema: schema,
    steps: [
      {
        id: 'a',
        capability: 'research',
        input: {
          tool: 'x.y',
          arguments: {
            count: '{{inputs.count}}',
            spaced: '  {{ inputs.count }}  ',
            text: 'hello {{inputs.name}}, {{inputs.count}} times',
            options: '{{inputs.options}}',
            inText: 'options={{inputs.options}}',
            size: '{{inputs.options.size}}',
            nested: [{ deep: '{{inputs.name}}' }],
            other: '{{not.ours}} {{ foo }}',
            task: 'run {{task.id}}',
          },
        },
      },
    ],
  });

  it('keeps the type of a whole-string parameter and interpolates the rest as text', () => {
    const { plan } = expandBlueprint(blueprint, { name: 'Ziggie', options: { size: 7 } });
    expect(plan.steps[0]!.input.arguments).toEqual({
      count: 3,
      spaced: 3,
      text: 'hello Ziggie, 3 times',
      options: { size: 7 },
      inText: 'options={"size":7}',
      size: 7,
      nested: [{ deep: 'Ziggie' }],
      other: '{{not.ours}} {{ foo }}',
      task: 'run {{task.id}}',
    });
  });

  it('returns the inputs with schema defaults filled in, without touching the caller object', () => {
    const given = { name: 'Ziggie', options: { size: 1 } };
    const { inputs } = expandBlueprint(blueprint, given);
    expect(inputs).toEqual({ name: 'Ziggie', count: 3, options: { size: 1 } });
    expect(given).toEqual({ name: 'Ziggie', options: { size: 1 } });
  });

  it('never reads substituted values as template: an input holding {{inputs.x}} stays text', () => {
    const { plan } = expandBlueprint(blueprint, { name: '{{inputs.count}}', options: { size: 1 } });
    expect(plan.steps[0]!.input.arguments).toMatchObject({ text: 'hello {{inputs.count}}, 3 times' });
  });

  it('returns a plan parsed by PlanSchema, with its defaults', () => {
    const { plan } = expandBlueprint(blueprint, { name: 'Ziggie', options: { size: 1 } });
    expect(plan.steps[0]).toMatchObject({ id: 'a', action: 'tool', retries: 0, gpu: false, dependsOn: [] });
  });
});

describe('expandBlueprint: fan-out', () => {
  const blueprint = bp({
    inputSchema: {
      type: 'object',
      properties: {
        n: { type: 'integer', default: 3 },
        items: { type: 'array', default: [{ name: 'red' }, { name: 'blue' }] },
      },
    },
    steps: [
      { id: 'start', capability: 'design', input: echo('go') },
      {
        id: 'gen',
        capability: 'art',
        dependsOn: ['start'],
        fanOut: { count: '{{inputs.n}}' },
        gpu: true,
        pool: 'gpu',
        input: { tool: 'x.y', arguments: { seed: '{{fanOut.index}}', label: 'copy {{fanOut.index}} of {{inputs.n}}', from: '{{steps.start.output.text}}' } },
      },
      {
        id: 'paint',
        capability: 'art',
        dependsOn: ['start'],
        fanOut: { forEach: '{{inputs.items}}' },
        input: { tool: 'x.y', arguments: { item: '{{fanOut.item}}', colour: '{{fanOut.item.name}}', text: 'paint {{fanOut.item}}' } },
      },
      {
        id: 'review',
        capability: 'qa',
        dependsOn: ['gen', 'paint'],
        input: {
          tool: 'x.y',
          arguments: {
            all: '{{steps.gen.output.text}}',
            content: '{{ steps.gen.output.content }}',
            report: 'Results:\n{{steps.gen.output.text}}\nend',
            start: '{{steps.start.output}}',
          },
        },
      },
      { id: 'fan-after-fan', capability: 'qa', dependsOn: ['paint'], fanOut: { count: 2 }, input: echo('{{steps.paint.output.text}}') },
    ],
    outputs: { images: '{{steps.gen.output.content}}', paints: 'all: {{steps.paint.output.text}}', n: '{{inputs.n}}', first: '{{steps.start.output.text}}' },
  });

  it('copies a fanned-out step into <id>-1 … <id>-N, each with its index', () => {
    const { plan } = expandBlueprint(blueprint, {});
    expect(plan.steps.map((s) => s.id)).toEqual(['start', 'gen-1', 'gen-2', 'gen-3', 'paint-1', 'paint-2', 'review', 'fan-after-fan-1', 'fan-after-fan-2']);
    const gen2 = plan.steps.find((s) => s.id === 'gen-2')!;
    expect(gen2).toMatchObject({ capability: 'art', gpu: true, pool: 'gpu', dependsOn: ['start'] });
    expect(gen2.input.arguments).toEqual({ seed: 2, label: 'copy 2 of 3', from: '{{steps.start.output.text}}' });
  });

  it('gives forEach copies their item, whole or by path', () => {
    const { plan } = expandBlueprint(blueprint, {});
    expect(plan.steps.find((s) => s.id === 'paint-2')!.input.arguments).toEqual({ item: { name: 'blue' }, colour: 'blue', text: 'paint {"name":"blue"}' });
  });

  it('rewires dependencies on a fanned-out step to every copy', () => {
    const { plan } = expandBlueprint(blueprint, { n: 2 });
    expect(plan.steps.find((s) => s.id === 'review')!.dependsOn).toEqual(['gen-1', 'gen-2', 'paint-1', 'paint-2']);
    expect(plan.steps.find((s) => s.id === 'fan-after-fan-2')!.dependsOn).toEqual(['paint-1', 'paint-2']);
  });

  it('turns a whole reference to a fanned-out step into the array of the copies, and joins them by newlines in text', () => {
    const { plan } = expandBlueprint(blueprint, { n: 2 });
    expect(plan.steps.find((s) => s.id === 'review')!.input.arguments).toEqual({
      all: ['{{steps.gen-1.output.text}}', '{{steps.gen-2.output.text}}'],
      content: ['{{steps.gen-1.output.content}}', '{{steps.gen-2.output.content}}'],
      report: 'Results:\n{{steps.gen-1.output.text}}\n{{steps.gen-2.output.text}}\nend',
      start: '{{steps.start.output}}',
    });
    expect(plan.steps.find((s) => s.id === 'fan-after-fan-1')!.input.arguments).toEqual({
      message: ['{{steps.paint-1.output.text}}', '{{steps.paint-2.output.text}}'],
    });
  });

  it('expands the outputs the same way', () => {
    const { outputs } = expandBlueprint(blueprint, { n: 2 });
    expect(outputs).toEqual({
      images: ['{{steps.gen-1.output.content}}', '{{steps.gen-2.output.content}}'],
      paints: 'all: {{steps.paint-1.output.text}}\n{{steps.paint-2.output.text}}',
      n: 2,
      first: '{{steps.start.output.text}}',
    });
  });

  it('takes a literal count', () => {
    const { plan } = expandBlueprint(bp({ steps: [{ id: 's', capability: 'art', fanOut: { count: 2 }, input: echo('{{fanOut.index}}') }] }), {});
    expect(plan.steps.map((s) => [s.id, s.input.arguments])).toEqual([
      ['s-1', { message: 1 }],
      ['s-2', { message: 2 }],
    ]);
  });
});

describe('expandBlueprint: input errors', () => {
  const blueprint = bp({ inputSchema: schema, steps: [{ id: 'a', capability: 'research', input: echo('{{inputs.name}}') }] });

  function inputError(inputs: unknown): ZiggieError {
    const err = thrown(() => expandBlueprint(blueprint, inputs));
    expect(err.code).toBe('BLUEPRINT_INPUT_INVALID');
    return err;
  }

  it.each([
    ['a missing required input', {}, '/name', 'is required'],
    ['a value of the wrong type', { name: 5 }, '/name', 'must be string'],
    ['a string too short', { name: 'x' }, '/name', 'must NOT have fewer than 2 characters'],
    ['a number out of range', { name: 'ok', count: 11 }, '/count', 'must be <= 10'],
    ['a non-integer', { name: 'ok', count: 1.5 }, '/count', 'must be integer'],
    ['an unknown input', { name: 'ok', colour: 'red' }, '/colour', 'is not allowed (unknown property)'],
    ['a bad array item', { name: 'ok', tags: ['a', 2] }, '/tags/1', 'must be string'],
    ['a bad format', { name: 'ok', email: 'not-an-email' }, '/email', 'must match format "email"'],
    ['inputs that are not an object', ['name'], '/', 'inputs must be an object'],
    ['a string that is not an object', 'name=x', '/', 'inputs must be an object'],
  ])('refuses %s', (_what, inputs, path, message) => {
    const err = inputError(inputs);
    expect(err.extras.errors).toContainEqual({ path, message });
    expect(err.message).toContain(`${path} ${message}`);
    expect(err.message).toMatch(/^inputs of test-bp@1\.0\.0 are invalid: /);
  });

  it('lists every problem at once', () => {
    const err = inputError({ count: 0, colour: 'red' });
    expect(err.extras.errors).toEqual(
      expect.arrayContaining([
        { path: '/name', message: 'is required' },
        { path: '/count', message: 'must be >= 1' },
        { path: '/colour', message: 'is not allowed (unknown property)' },
      ]),
    );
  });

  it('accepts no inputs at all when nothing is required', () => {
    const open = bp({ inputSchema: { type: 'object', properties: { n: { type: 'integer', default: 1 } } }, steps: [{ id: 'a', capability: 'research', input: echo('{{inputs.n}}') }] });
    expect(expandBlueprint(open, undefined).inputs).toEqual({ n: 1 });
    expect(expandBlueprint(open, null).plan.steps[0]!.input.arguments).toEqual({ message: 1 });
  });

  it('refuses inputs that carry dispatch-time references', () => {
    const err = inputError({ name: 'steal {{ steps.secret.output.text }}' });
    expect(err.extras.errors).toEqual([{ path: '/name', message: 'contains {{steps.…}} or {{task.…}}, which only a blueprint template may use' }]);
    expect(inputError({ name: 'ok', tags: ['{{task.id}}'] }).extras.errors).toEqual([expect.objectContaining({ path: '/tags/0' })]);
  });

  it('refuses a declared input the template needs when it was not given and has no default', () => {
    const b = bp({ inputSchema: schema, steps: [{ id: 'a', capability: 'research', input: echo('{{inputs.optional}}') }] });
    const err = thrown(() => expandBlueprint(b, { name: 'ok' }));
    expect(err.code).toBe('BLUEPRINT_INPUT_INVALID');
    expect(err.extras.errors).toEqual([{ path: '/optional', message: 'is used by step a but was not given and has no default' }]);
  });

  it('refuses a parameter path the input does not have', () => {
    const b = bp({ inputSchema: schema, steps: [{ id: 'a', capability: 'research', input: echo('{{inputs.options.size}}') }] });
    const err = thrown(() => expandBlueprint(b, { name: 'ok', options: {} }));
    expect(err.code).toBe('BLUEPRINT_INPUT_INVALID');
    expect(err.extras.errors).toEqual([{ path: '/options/size', message: 'is used by step a as {{inputs.options.size}} but has no value' }]);
  });
});

describe('expandBlueprint: template errors', () => {
  function templateError(b: Blueprint, inputs: unknown = {}): ZiggieError {
    const err = thrown(() => expandBlueprint(b, inputs));
    expect(err.code).toBe('BLUEPRINT_INVALID');
    return err;
  }

  const countSchema = { type: 'object', properties: { n: { type: 'number' }, list: {} } };
  const fanned = (fanOut: unknown) => bp({ inputSchema: countSchema, steps: [{ id: 'g', capability: 'art', fanOut, input: echo('x') }] });

  it('refuses a parameter naming no input', () => {
    const b = bp({ inputSchema: { type: 'object', properties: {} }, steps: [{ id: 'a', capability: 'research', input: echo('hi {{inputs.nobody}}') }] });
    expect(templateError(b).message).toBe('test-bp@1.0.0: step a uses {{inputs.nobody}}, which the input schema does not declare');
  });

  it.each([
    [0, 'fanOut.count is 0; it must be an integer from 1 to 1000'],
    [2.5, 'fanOut.count is 2.5; it must be an integer from 1 to 1000'],
    [MAX_FAN_OUT + 1, `fanOut.count is ${MAX_FAN_OUT + 1}; it must be an integer from 1 to 1000`],
  ])('refuses a fan-out count of %p', (n, message) => {
    expect(templateError(fanned({ count: '{{inputs.n}}' }), { n }).message).toBe(`test-bp@1.0.0: step g: ${message}`);
  });

  it('refuses a fan-out count that is not a number', () => {
    expect(templateError(bp({ inputSchema: { type: 'object', properties: { n: {} } }, steps: [{ id: 'g', capability: 'art', fanOut: { count: '{{inputs.n}}' }, input: echo('x') }] }), { n: '3' }).message).toContain(
      'fanOut.count is "3"',
    );
  });

  it('refuses forEach over something that is not a non-empty array', () => {
    expect(templateError(fanned({ forEach: '{{inputs.list}}' }), { list: 'abc' }).message).toContain('fanOut.forEach must name an array input, got "abc"');
    expect(templateError(fanned({ forEach: '{{inputs.list}}' }), { list: [] }).message).toContain('fanOut.forEach has 0 items');
  });

  it('refuses a plan over MAX_PLAN_STEPS', () => {
    const steps = Array.from({ length: 11 }, (_, i) => ({ id: `s${i}`, capability: 'art', fanOut: { count: 1000 }, input: echo('x') }));
    expect(templateError(bp({ steps })).message).toBe('test-bp@1.0.0 expands to more than 10000 steps');
  });

  it('refuses a dependency on an unknown step, on itself, and cycles', () => {
    expect(templateError(bp({ steps: [{ id: 'a', capability: 'qa', dependsOn: ['ghost'] }] })).message).toBe('test-bp@1.0.0: step a depends on unknown step ghost');
    expect(templateError(bp({ steps: [{ id: 'a', capability: 'qa', dependsOn: ['a'] }] })).message).toBe('test-bp@1.0.0: step a depends on itself');
    const cycle = templateError(
      bp({
        steps: [
          { id: 'a', capability: 'qa', dependsOn: ['c'] },
          { id: 'b', capability: 'qa', dependsOn: ['a'] },
          { id: 'c', capability: 'qa', dependsOn: ['b'] },
        ],
      }),
    );
    expect(cycle.message).toBe('test-bp@1.0.0: the template has a cycle: a -> c -> b -> a');
  });

  it('refuses duplicate ids, before and after copying', () => {
    expect(templateError(bp({ steps: [{ id: 'a', capability: 'qa' }, { id: 'a', capability: 'qa' }] })).message).toContain('step id a appears more than once');
    const clash = bp({ steps: [{ id: 'g', capability: 'art', fanOut: { count: 2 } }, { id: 'g-2', capability: 'qa' }] });
    expect(templateError(clash).message).toBe('test-bp@1.0.0: step id g-2 would appear twice once fan-out steps are copied');
  });

  it('refuses references to unknown steps and to steps that do not run earlier', () => {
    expect(templateError(bp({ steps: [{ id: 'a', capability: 'qa', input: echo('{{steps.ghost.output.text}}') }] })).message).toBe(
      'test-bp@1.0.0: step a references unknown step ghost',
    );
    const sameWave = bp({ steps: [{ id: 'a', capability: 'qa' }, { id: 'b', capability: 'qa', input: echo('x {{steps.a.output}}') }] });
    expect(templateError(sameWave).message).toBe('test-bp@1.0.0: step b references the output of a, which does not run before it (add it to dependsOn)');
  });

  it('refuses fanOut placeholders outside a fanned-out step, and in outputs', () => {
    expect(templateError(bp({ steps: [{ id: 'a', capability: 'qa', input: echo('{{fanOut.index}}') }] })).message).toBe('test-bp@1.0.0: step a uses {{fanOut.…}} but has no fanOut');
    expect(templateError(bp({ steps: [{ id: 'a', capability: 'qa', fanOut: { count: 1 } }], outputs: { i: '{{fanOut.item}}' } })).message).toBe(
      'test-bp@1.0.0: outputs cannot use {{fanOut.…}}',
    );
  });

  it('refuses malformed placeholders of its namespaces', () => {
    for (const bad of ['{{inputs}}', '{{task.name}}', '{{steps.a.outputs}}', '{{fanOut.count}}']) {
      const err = templateError(bp({ steps: [{ id: 'a', capability: 'qa', fanOut: { count: 1 }, input: echo(bad) }] }));
      expect(err.message).toContain(`${bad} is not a valid placeholder`);
    }
  });

  it('refuses outputs referencing an unknown step', () => {
    expect(templateError(bp({ steps: [{ id: 'a', capability: 'qa' }], outputs: { r: { nested: ['{{steps.b.output.text}}'] } } })).message).toBe(
      'test-bp@1.0.0: outputs reference unknown step b',
    );
  });

  it('refuses an expansion that is not a valid plan, naming the step', () => {
    const b = bp({ inputSchema: { type: 'object', properties: { cap: { type: 'string' } } }, steps: [{ id: 'a', capability: '{{inputs.cap}}' }] });
    const err = templateError(b, { cap: 'Not A Token' });
    expect(err.message).toMatch(/^test-bp@1\.0\.0 expands to an invalid plan: step a\.capability: /);
  });

  it('reports template problems before input problems', () => {
    const b = bp({ inputSchema: schema, steps: [{ id: 'a', capability: 'qa', dependsOn: ['ghost'] }] });
    expect(templateError(b, {}).message).toContain('unknown step ghost');
  });
});

describe('checkOutput', () => {
  const withSchema = bp({
    steps: [{ id: 'a', capability: 'qa' }],
    outputSchema: { type: 'object', required: ['bundle'], properties: { bundle: { type: 'string', pattern: '^bundles/' }, n: { type: 'integer' } } },
  });

  it('is undefined for a matching output', () => {
    expect(checkOutput(withSchema, { bundle: 'bundles/x', n: 2 })).toBeUndefined();
  });

  it('lists every mismatch', () => {
    expect(checkOutput(withSchema, { n: 'two' })).toBe("output does not match the output schema of test-bp@1.0.0: / must have required property 'bundle'; /n must be integer");
    expect(checkOutput(withSchema, { bundle: 'elsewhere' })).toBe('output does not match the output schema of test-bp@1.0.0: /bundle must match pattern "^bundles/"');
  });

  it('accepts anything without an output schema', () => {
    expect(checkOutput(bp({ steps: [{ id: 'a', capability: 'qa' }] }), 42)).toBeUndefined();
  });

  it('says so when the output schema does not compile', () => {
    const broken = bp({ steps: [{ id: 'a', capability: 'qa' }], outputSchema: { type: 'objekt' } });
    expect(checkOutput(broken, {})).toMatch(/^output does not match the output schema of test-bp@1\.0\.0: the schema does not compile: /);
  });
});

describe('validateBlueprint', () => {
  it('accepts a blueprint that expands with its defaults and examples', () => {
    const b = bp({
      inputSchema: { type: 'object', required: ['name', 'n'], properties: { name: { type: 'string', examples: ['Ziggie'] }, n: { type: 'integer', minimum: 2 } } },
      outputSchema: { type: 'object' },
      steps: [{ id: 'g', capability: 'art', fanOut: { count: '{{inputs.n}}' }, input: echo('{{inputs.name}}') }],
      outputs: { all: '{{steps.g.output.text}}' },
    });
    expect(() => validateBlueprint(b)).not.toThrow();
  });

  function invalid(b: unknown): string {
    const err = thrown(() => validateBlueprint(b as Blueprint));
    expect(err.code).toBe('BLUEPRINT_INVALID');
    return err.message;
  }

  it('refuses a blueprint that does not parse', () => {
    expect(invalid({ name: 'Bad Name', version: '1', template: { steps: [] } })).toMatch(/^blueprint is invalid: name: /);
  });

  it('refuses input and output schemas that do not compile', () => {
    expect(invalid(bp({ inputSchema: { type: 'object', properties: { a: { type: 'strin' } } }, steps: [{ id: 'a', capability: 'qa' }] }))).toMatch(
      /^test-bp@1\.0\.0: the input schema does not compile: /,
    );
    expect(invalid(bp({ inputSchema: { type: 'object', properties: { a: { type: 'string', minLenght: 2 } } }, steps: [{ id: 'a', capability: 'qa' }] }))).toContain(
      'minLenght',
    );
    expect(invalid(bp({ outputSchema: { type: 'object', required: 'a' }, steps: [{ id: 'a', capability: 'qa' }] }))).toMatch(/the output schema does not compile/);
  });

  it('refuses an input schema that is not an object schema', () => {
    expect(invalid(bp({ inputSchema: { type: 'array' }, steps: [{ id: 'a', capability: 'qa' }] }))).toBe(
      'test-bp@1.0.0: the input schema must describe an object (type "object"), not "array"',
    );
  });

  it('refuses a template its own example inputs cannot expand, saying how to fix it', () => {
    const b = bp({ inputSchema: { type: 'object', required: ['code'], properties: { code: { type: 'string', pattern: '^[A-Z]{3}$' } } }, steps: [{ id: 'a', capability: 'qa' }] });
    expect(invalid(b)).toMatch(/^test-bp@1\.0\.0 does not expand with example inputs \{"code":"x"\} \(give required inputs "examples" or defaults in the input schema\): .*\/code must match pattern/);
  });

  it('refuses a template that uses an optional input without a default', () => {
    const b = bp({ inputSchema: { type: 'object', properties: { note: { type: 'string' } } }, steps: [{ id: 'a', capability: 'qa', input: echo('{{inputs.note}}') }] });
    expect(invalid(b)).toContain('/note is used by step a but was not given and has no default');
  });

  it('refuses outputs referencing unknown steps and bad templates', () => {
    expect(invalid(bp({ steps: [{ id: 'a', capability: 'qa' }], outputs: { x: '{{steps.nope.output}}' } }))).toBe('test-bp@1.0.0: outputs reference unknown step nope');
    expect(invalid(bp({ steps: [{ id: 'a', capability: 'qa', dependsOn: ['z'] }] }))).toContain('depends on unknown step z');
  });
});

describe('exampleValue', () => {
  it('prefers examples, const, enum and default, then the smallest value of the type', () => {
    expect(
      exampleValue({
        type: 'object',
        required: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'],
        properties: {
          a: { type: 'string', examples: ['ex'] },
          b: { const: 7 },
          c: { enum: ['x', 'y'] },
          d: { type: 'string', default: 'dflt' },
          e: { type: 'string', minLength: 3 },
          f: { type: 'integer', minimum: 5 },
          g: { type: 'number', exclusiveMinimum: 0.5 },
          h: { type: 'array', minItems: 2, items: { type: 'boolean' } },
          i: { type: 'object', required: ['j'], properties: { j: { type: 'integer', maximum: -3 } } },
        },
        'not-required': { type: 'string' },
      }),
    ).toEqual({ a: 'ex', b: 7, c: 'x', d: 'dflt', e: 'xxx', f: 5, g: 1.5, h: [false, false], i: { j: -3 } });
  });
});

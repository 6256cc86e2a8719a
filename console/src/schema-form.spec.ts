import { fieldsOf, initialValues, valuesToInput } from './schema-form';

/** The input schema of the built-in character-variations blueprint, as the API serves it. */
const CHARACTER_VARIATIONS = {
  type: 'object',
  additionalProperties: false,
  required: ['character'],
  properties: {
    character: { type: 'string', minLength: 1, maxLength: 300, description: 'Who to draw' },
    style: { type: 'string', minLength: 1, maxLength: 200, default: 'cel-shaded' },
    variations: { type: 'integer', minimum: 1, maximum: 16, default: 4 },
  },
};

describe('fieldsOf', () => {
  it('makes a typed field per property with its limits, default and whether it is required', () => {
    const fields = fieldsOf(CHARACTER_VARIATIONS);
    expect(fields.map((f) => [f.name, f.kind, f.required, f.initial])).toEqual([
      ['character', 'text', true, ''],
      ['style', 'string', false, 'cel-shaded'],
      ['variations', 'integer', false, '4'],
    ]);
    expect(fields[2]).toMatchObject({ minimum: 1, maximum: 16 });
  });

  it('offers enums as choices, booleans as checkboxes and anything nested as JSON text', () => {
    const fields = fieldsOf({
      type: 'object',
      properties: {
        mode: { type: 'string', enum: ['fast', 'slow'] },
        loud: { type: 'boolean' },
        options: { type: 'object', default: { a: 1 } },
        tags: { type: 'array', items: { type: 'string' } },
        maybe: { type: ['number', 'null'] },
      },
    });
    expect(Object.fromEntries(fields.map((f) => [f.name, f.kind]))).toEqual({ mode: 'enum', loud: 'boolean', options: 'json', tags: 'json', maybe: 'number' });
    expect(initialValues(fields)).toEqual({ mode: '', loud: 'false', options: '{\n  "a": 1\n}', tags: '', maybe: '' });
  });

  it('has no fields for a schema without properties', () => {
    expect(fieldsOf(undefined)).toEqual([]);
    expect(fieldsOf({ type: 'object' })).toEqual([]);
  });
});

describe('valuesToInput', () => {
  const fields = fieldsOf(CHARACTER_VARIATIONS);

  it('converts the text of each field to the schema\'s type and leaves empty optional fields to their default', () => {
    expect(valuesToInput(fields, { character: 'a cat', style: '', variations: '10' })).toEqual({ value: { character: 'a cat', variations: 10 }, errors: {} });
  });

  it('names the field of every error: required, not a whole number, out of range, too long', () => {
    expect(valuesToInput(fields, { character: ' ', style: 'x'.repeat(201), variations: '2.5' }).errors).toEqual({
      character: 'required',
      style: 'at most 200 characters',
      variations: 'a whole number',
    });
    expect(valuesToInput(fields, { character: 'a', variations: '17' }).errors).toEqual({ variations: 'at most 16' });
    expect(valuesToInput(fields, { character: 'a', variations: '0' }).errors).toEqual({ variations: 'at least 1' });
  });

  it('parses JSON fields and refuses text that is not JSON', () => {
    const nested = fieldsOf({ type: 'object', properties: { o: { type: 'object' }, b: { type: 'boolean' } } });
    expect(valuesToInput(nested, { o: '{"k":[1,2]}', b: 'true' })).toEqual({ value: { o: { k: [1, 2] }, b: true }, errors: {} });
    expect(valuesToInput(nested, { o: '{k:1}', b: 'false' }).errors).toEqual({ o: 'not valid JSON' });
  });
});

import { renderToStaticMarkup } from 'react-dom/server';
import { Output } from './Output';
import { SchemaForm } from './SchemaForm';
import { ErrorBox } from './common';
import { ApiError } from '../api';

describe('Output', () => {
  it('renders tool output as text: markup in it never becomes elements', () => {
    const html = renderToStaticMarkup(<Output value={{ text: '<script>alert(1)</script><img src=x onerror=alert(2)>', content: [] }} />);
    expect(html).not.toContain('<script');
    expect(html).not.toContain('<img');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
  });

  it('shows raster images as data URLs and nothing else as an image', () => {
    const png = { type: 'image', mimeType: 'image/png', data: 'iVBORw0KGgo=' };
    const svg = { type: 'image', mimeType: 'image/svg+xml', data: 'PHN2Zz4=' };
    const forged = { type: 'image', mimeType: 'image/png', data: 'x" onerror="alert(1)' };
    const html = renderToStaticMarkup(<Output value={{ content: [png, svg, forged] }} />);
    expect(html.match(/<img /g)).toHaveLength(1);
    expect(html).toContain('src="data:image/png;base64,iVBORw0KGgo="');
  });
});

describe('SchemaForm', () => {
  it('generates an input per property, typed and with its default', () => {
    const html = renderToStaticMarkup(
      <SchemaForm
        idPrefix="bp"
        submitLabel="Submit task"
        onSubmit={() => undefined}
        schema={{ type: 'object', required: ['character'], properties: { character: { type: 'string', maxLength: 300 }, variations: { type: 'integer', minimum: 1, maximum: 16, default: 4 }, loud: { type: 'boolean' } } }}
      />,
    );
    expect(html).toContain('<textarea id="bp-character" name="character"');
    expect(html).toContain('<input id="bp-variations" type="number" step="1" min="1" max="16" name="variations" value="4"/>');
    expect(html).toContain('type="checkbox"');
    expect(html).toContain('Submit task');
  });

  it('disables submission with the reason when the role may not act', () => {
    const html = renderToStaticMarkup(<SchemaForm idPrefix="t" submitLabel="Go" onSubmit={() => undefined} schema={{}} disabled="needs agent:dispatch (roles: l2l3)" />);
    expect(html).toContain('disabled=""');
    expect(html).toContain('title="needs agent:dispatch (roles: l2l3)"');
  });
});

describe('ErrorBox', () => {
  it('shows the problem\'s code, message and field errors', () => {
    const err = new ApiError({ title: 'Bad', status: 400, code: 'BLUEPRINT_INPUT_INVALID', detail: 'inputs do not match', errors: [{ path: 'variations', message: 'must be <= 16' }] });
    const html = renderToStaticMarkup(<ErrorBox error={err} />);
    expect(html).toContain('data-code="BLUEPRINT_INPUT_INVALID"');
    expect(html).toContain('inputs do not match');
    expect(html).toContain('<code>variations</code>: must be &lt;= 16');
  });
});

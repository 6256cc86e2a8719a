import { useMemo, useState, type FormEvent } from 'react';
import { fieldsOf, initialValues, valuesToInput, type Field, type JsonSchema } from '../schema-form';

interface Props {
  schema: JsonSchema | undefined;
  submitLabel: string;
  disabled?: string | null;
  busy?: boolean;
  onSubmit(value: Record<string, unknown>): void;
  /** Rendered above the generated fields (e.g. workspace and priority of a task). */
  extra?: React.ReactNode;
  idPrefix: string;
}

function Input({ field, value, onChange, id }: { field: Field; value: string; onChange(v: string): void; id: string }) {
  switch (field.kind) {
    case 'boolean':
      return <input id={id} name={field.name} type="checkbox" checked={value === 'true'} onChange={(e) => onChange(String(e.target.checked))} />;
    case 'enum':
      return (
        <select id={id} name={field.name} value={value} onChange={(e) => onChange(e.target.value)}>
          {field.required ? null : <option value="">(default)</option>}
          {field.options!.map((o) => (
            <option key={o}>{o}</option>
          ))}
        </select>
      );
    case 'integer':
    case 'number':
      return <input id={id} name={field.name} type="number" step={field.kind === 'integer' ? 1 : 'any'} min={field.minimum} max={field.maximum} value={value} onChange={(e) => onChange(e.target.value)} />;
    case 'text':
    case 'json':
      return <textarea id={id} name={field.name} rows={field.kind === 'json' ? 4 : 3} value={value} onChange={(e) => onChange(e.target.value)} spellCheck={false} />;
    default:
      return <input id={id} name={field.name} type="text" value={value} maxLength={field.maxLength} onChange={(e) => onChange(e.target.value)} />;
  }
}

/** A form generated from a JSON Schema; errors are shown next to the field they belong to. */
export function SchemaForm({ schema, submitLabel, disabled, busy, onSubmit, extra, idPrefix }: Props) {
  const fields = useMemo(() => fieldsOf(schema), [schema]);
  const [values, setValues] = useState(() => initialValues(fields));
  const [errors, setErrors] = useState<Record<string, string>>({});
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const { value, errors: found } = valuesToInput(fields, values);
    setErrors(found);
    if (Object.keys(found).length === 0) onSubmit(value);
  };
  return (
    <form className="schema-form" onSubmit={submit} noValidate>
      {extra}
      {fields.map((f) => {
        const id = `${idPrefix}-${f.name}`;
        return (
          <div className="field" key={f.name}>
            <label htmlFor={id}>
              {f.label}
              {f.required ? <span className="req"> *</span> : null}
            </label>
            <Input
              field={f}
              id={id}
              value={values[f.name] ?? ''}
              onChange={(v) => {
                setValues((old) => ({ ...old, [f.name]: v }));
                // An error is about the value it was found in; a new value has not been checked yet.
                setErrors(({ [f.name]: _gone, ...rest }) => rest);
              }}
            />
            {f.description ? <small className="muted">{f.description}</small> : null}
            {errors[f.name] ? <small className="field-error" data-field={f.name}>{errors[f.name]}</small> : null}
          </div>
        );
      })}
      {fields.length === 0 ? <p className="muted">No inputs.</p> : null}
      <button type="submit" disabled={Boolean(disabled) || busy} title={disabled ?? undefined}>
        {busy ? 'Working…' : submitLabel}
      </button>
    </form>
  );
}

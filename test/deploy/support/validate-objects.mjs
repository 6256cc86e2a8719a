#!/usr/bin/env node
// Validates rendered Kubernetes objects: reads a JSON array of objects on stdin and prints a JSON
// array of { index, apiVersion, kind, name, errors } on stdout.
//
// Kubernetes kinds and the Istio, KEDA and Prometheus Operator CRDs are checked with their
// kubernetes-models classes (new Model(object).validate()). Those schemas, like the Kubernetes
// OpenAPI documents they come from, do not set additionalProperties: false, so a misspelt or
// misplaced field passes .validate() (the API server would drop it or refuse it on a strict
// field validation). Each field is therefore also probed against the same compiled schema: the
// field's value is replaced by a value no schema accepts, and a field whose replacement the
// schema does not complain about is one the schema does not declare, i.e. unknown.
// Kong's CRDs have no kubernetes-models package: ./kong-schemas.mjs holds strict schemas for them.
//
// A plain ES module run as a child process: kubernetes-models is ESM-only and jest compiles the
// specs to CommonJS.
import Ajv from 'ajv';
import * as core from 'kubernetes-models/v1';
import * as apps from 'kubernetes-models/apps/v1';
import * as batch from 'kubernetes-models/batch/v1';
import * as policy from 'kubernetes-models/policy/v1';
import * as autoscaling from 'kubernetes-models/autoscaling/v2';
import * as networking from 'kubernetes-models/networking.k8s.io/v1';
import * as rbac from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import * as istioSecurity from '@kubernetes-models/istio/security.istio.io/v1';
import * as istioNetworking from '@kubernetes-models/istio/networking.istio.io/v1';
import * as keda from '@kubernetes-models/keda/keda.sh/v1alpha1';
import * as monitoring from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { jwtCredential, kongAnnotations, kongClusterPlugin, kongConsumer, kongPlugin, pluginConfigs } from './kong-schemas.mjs';

/** apiVersion/kind → model class, for every top-level kind of the imported groups. */
const MODELS = new Map();
for (const mod of [core, apps, batch, policy, autoscaling, networking, rbac, istioSecurity, istioNetworking, keda, monitoring]) {
  for (const value of Object.values(mod)) {
    if (typeof value === 'function' && typeof value.apiVersion === 'string' && typeof value.kind === 'string') {
      MODELS.set(`${value.apiVersion}/${value.kind}`, value);
    }
  }
}

const ajv = new Ajv({ allErrors: true, jsonPointers: true });
const kong = {
  'configuration.konghq.com/v1/KongPlugin': ajv.compile(kongPlugin),
  'configuration.konghq.com/v1/KongClusterPlugin': ajv.compile(kongClusterPlugin),
  'configuration.konghq.com/v1/KongConsumer': ajv.compile(kongConsumer),
};
const pluginConfig = Object.fromEntries(Object.entries(pluginConfigs).map(([name, schema]) => [name, ajv.compile(schema)]));
const credential = ajv.compile(jwtCredential);

/** A value every schema refuses: not a string, number, boolean, array, object or null. */
const NOT_A_VALUE = Symbol('not a value');
/** JSON Pointer escaping, as ajv writes instancePath. */
const pointer = (segments) => segments.map((s) => `/${String(s).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');

function modelErrors(Model, data) {
  try {
    new Model(data).validate();
    return [];
  } catch (err) {
    return err.errors ?? [{ instancePath: '', message: err.message }];
  }
}

/** Paths of fields the model's schema does not declare (see the header). */
function unknownFields(Model, object) {
  const unknown = [];
  const walk = (node, path, replace) => {
    if (Array.isArray(node)) {
      node.forEach((item, i) =>
        walk(item, [...path, i], (v) => {
          const copy = node.slice();
          copy[i] = v;
          return replace(copy);
        }),
      );
      return;
    }
    if (node === null || typeof node !== 'object') return;
    for (const key of Object.keys(node)) {
      const replaceKey = (v) => replace({ ...node, [key]: v });
      const at = pointer([...path, key]);
      const errors = modelErrors(Model, replaceKey(NOT_A_VALUE));
      if (errors.some((e) => e.instancePath === at || e.instancePath.startsWith(`${at}/`))) walk(node[key], [...path, key], replaceKey);
      else unknown.push(at);
    }
  };
  walk(object, [], (v) => v);
  return unknown;
}

function ajvErrors(validate, data, kind, prefix = '') {
  if (validate(data)) return [];
  return validate.errors.map((e) =>
    e.keyword === 'additionalProperties'
      ? `${prefix}${e.dataPath}/${e.params.additionalProperty} is not a field of ${kind}`
      : `${prefix}${e.dataPath || (prefix ? '' : '/')} ${e.message}`,
  );
}

function validate(object) {
  const id = `${object?.apiVersion}/${object?.kind}`;
  const errors = [];
  if (kong[id]) {
    errors.push(...ajvErrors(kong[id], object, object.kind));
    if (object.kind.endsWith('Plugin') && pluginConfig[object.plugin] && object.config) errors.push(...ajvErrors(pluginConfig[object.plugin], object.config, `${object.plugin} config`, '/config'));
    return errors;
  }
  const Model = MODELS.get(id);
  if (!Model) return [`no schema for ${id}`];
  errors.push(...modelErrors(Model, object).map((e) => `${e.instancePath || '/'} ${e.message ?? e.keyword}`));
  if (errors.length === 0) errors.push(...unknownFields(Model, object).map((p) => `${p} is not a field of ${object.kind}`));
  if (object.kind === 'Secret' && object.metadata?.labels?.['konghq.com/credential'] === 'jwt') {
    errors.push(...ajvErrors(credential, object.stringData ?? {}, 'a Kong JWT credential', '/stringData'));
  }
  for (const key of Object.keys(object.metadata?.annotations ?? {})) {
    if (key.startsWith('konghq.com/') && !kongAnnotations.has(key)) errors.push(`/metadata/annotations/${key} is not a Kong Ingress Controller annotation`);
  }
  return errors;
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const objects = JSON.parse(Buffer.concat(chunks).toString('utf8'));
const results = objects.map((object, index) => ({
  index,
  apiVersion: object?.apiVersion,
  kind: object?.kind,
  name: object?.metadata?.name,
  errors: validate(object),
}));
process.stdout.write(JSON.stringify(results));

export * from './defaults';
export * from './errors';
export * from './governance';
export * from './plan';
export * from './plan-pb';
export * from './rbac';
export * from './streams';
export * from './subjects';
export * as pb from './proto';

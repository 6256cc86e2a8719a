export * from './ports';
export * from './processes';
export * from './nats';
export * from './postgres';
export * from './redis';
export * from './cluster';

export * from './ports';
export * from './processes';
export * from './nats';
export * from './postgres';

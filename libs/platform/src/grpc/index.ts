export * from './grpc';
export * from './peers';
export * from './metrics';

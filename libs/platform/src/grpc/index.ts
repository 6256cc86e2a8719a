export * from './grpc';
export * from './peers';

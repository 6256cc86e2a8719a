export * from './discovery';
export * from './discovery.module';

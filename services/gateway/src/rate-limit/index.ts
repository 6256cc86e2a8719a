export * from './admin-api.decorator';
export * from './rate-limit.config';
export * from './rate-limit.guard';
export * from './rate-limit.module';
export * from './rate-limiter';

export * from './nats.service';

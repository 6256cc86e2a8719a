// Imported first by main.ts so OpenTelemetry patches http and grpc before they load.
import { startTelemetry } from '@ziggie/platform/telemetry';

startTelemetry('agent-runtime');

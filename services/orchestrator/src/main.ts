import './tracing';
import { runService } from '@ziggie/platform';
import { definition } from './service';

runService(definition);

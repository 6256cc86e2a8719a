import { SetMetadata } from '@nestjs/common';

export const ADMIN_API_KEY = 'ziggie:rate-limit:admin-api';

/**
 * Counts a handler or controller against the admin API budget (RATE_LIMIT_ADMIN_PER_MIN).
 * Routes requiring config:change or workspace:manage count there without it.
 */
export const AdminApi = (): MethodDecorator & ClassDecorator => SetMetadata(ADMIN_API_KEY, true);

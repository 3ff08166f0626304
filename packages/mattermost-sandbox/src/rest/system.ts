import type { Exchange } from './http.js';
import { route, type Route } from './route.js';

/** GET /system/ping without get_server_status (api4/system.go getSystemPing). */
function ping(ex: Exchange): void {
  ex.sendJson(200, {
    ActiveSearchBackend: 'database',
    AndroidLatestVersion: '',
    AndroidMinVersion: '',
    IosLatestVersion: '',
    IosMinVersion: '',
    status: 'OK',
  });
}

export const systemRoutes: Route[] = [route('GET', '/api/v4/system/ping', ping, false)];

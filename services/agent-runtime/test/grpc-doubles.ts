// The port doubles served over real gRPC (McpGateway, AgentRegistry and Orchestrator on one
// port), so integration specs exercise the runtime's gRPC clients, paging and cancellation.
import type { ServiceDefinition, UntypedServiceImplementation } from '@grpc/grpc-js';
import { pb, ZiggieError } from '@ziggie/contracts';
import { serverStream, startGrpcServer, stopGrpcServer, unary } from '@ziggie/platform';
import { McpGatewayDouble, OrchestratorDouble, RegistryDouble, taskOf } from './doubles';

/** Every method of the service; those the test did not give answer UNIMPLEMENTED. */
function implement(definition: ServiceDefinition, given: UntypedServiceImplementation): UntypedServiceImplementation {
  const notGiven = unary(() => Promise.reject(new ZiggieError('UNIMPLEMENTED', 'not served by this double')));
  return Object.fromEntries(Object.keys(definition).map((name) => [name, given[name] ?? notGiven]));
}

function page<T>(all: T[], request: pb.PageRequest | undefined, pageSize: number): { items: T[]; total: number; nextCursor: string } {
  const offset = Number(request?.cursor || 0);
  const items = all.slice(offset, offset + Math.min(pageSize, request?.limit || pageSize));
  return { items, total: all.length, nextCursor: offset + items.length < all.length ? String(offset + items.length) : '' };
}

export interface ServedDoubles {
  address: string;
  stop(): Promise<void>;
}

export async function serveDoubles(d: { gateway: McpGatewayDouble; registry: RegistryDouble; orchestrator: OrchestratorDouble; pageSize?: number }): Promise<ServedDoubles> {
  const pageSize = d.pageSize ?? 2;
  const gateway = implement(pb.McpGatewayService, {
    listTools: unary(async (req: pb.ListToolsRequest) => page(await d.gateway.listTools(), req.page, pageSize)),
    listServers: unary(async () => ({ items: await d.gateway.listServers() })),
    callTool: serverStream<pb.CallToolRequest, pb.CallToolEvent>(async (req, call) => {
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort());
      try {
        const result = await d.gateway.callTool(req, {
          signal: abort.signal,
          onProgress: () => call.write({ event: { $case: 'progress', value: { progress: 1, total: 0, message: '' } } }),
        });
        call.write({ event: { $case: 'result', value: result } });
      } catch (err) {
        // The caller went away: nobody is left to answer.
        if (!abort.signal.aborted) throw err;
      }
    }),
  });
  const registry = implement(pb.AgentRegistryService, {
    listAgents: unary(async (req: pb.ListAgentsRequest) => page(await d.registry.listAgents(), req.page, pageSize)),
    listChildren: unary(async (req: pb.ListChildrenRequest) => page(await d.registry.listChildren(req.id), req.page, pageSize)),
  });
  const orchestrator = implement(pb.OrchestratorService, {
    submitTask: unary((req: pb.SubmitTaskRequest) => d.orchestrator.submitTask(req)),
    getTask: unary((req: pb.GetTaskRequest) => d.orchestrator.getTask(req.id)),
    cancelTask: unary(async (req: pb.CancelTaskRequest) => {
      await d.orchestrator.cancelTask(req.id, req.principal!, req.reason);
      return taskOf(req.id, { status: 'cancelled' });
    }),
  });
  const { server, port } = await startGrpcServer({ host: '127.0.0.1', port: 0 }, [
    { definition: pb.McpGatewayService, implementation: gateway },
    { definition: pb.AgentRegistryService, implementation: registry },
    { definition: pb.OrchestratorService, implementation: orchestrator },
  ]);
  return { address: `127.0.0.1:${port}`, stop: () => stopGrpcServer(server, 1_000) };
}

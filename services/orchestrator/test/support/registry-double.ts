// An agent-registry double over real gRPC: the capabilities a plan may name, and one agent per
// capability for every selection.
import { pb } from '@ziggie/contracts';
import { startGrpcServer, stopGrpcServer, unary } from '@ziggie/platform';
import { implement, ServedDouble } from './coord-double';

export async function serveRegistry(capabilities: string[]): Promise<ServedDouble> {
  const agentFor = (req: pb.SelectAgentRequest): pb.Agent =>
    pb.Agent.fromPartial({ id: req.agentId || `agent-${req.capability}`, level: 3, workspace: req.workspace, capabilities: [req.capability], status: 'idle' });
  const implementation = implement(pb.AgentRegistryService, {
    listCapabilities: unary(() => ({ capabilities })),
    selectAgents: unary((req: pb.SelectAgentsRequest) => ({
      results: req.requests.map((r) => ({ agent: agentFor(r), errorCode: '', errorMessage: '' })),
    })),
  });
  const { server, port } = await startGrpcServer({ host: '127.0.0.1', port: 0 }, [{ definition: pb.AgentRegistryService, implementation }]);
  return { address: `127.0.0.1:${port}`, port, stop: () => stopGrpcServer(server, 500) };
}

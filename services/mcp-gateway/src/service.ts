import { Module } from '@nestjs/common';
import { pb } from '@ziggie/contracts';
import { GrpcBinding, serverStream, ServiceDefinition, unary } from '@ziggie/platform';
import { mcpEnv } from './config';
import { ToolsService } from './tools.service';

@Module({ providers: [ToolsService] })
export class McpGatewayModule {}

function grpcBindings(tools: ToolsService): GrpcBinding[] {
  const implementation: pb.McpGatewayServer = {
    listTools: unary((req) => tools.listTools(req)),
    listServers: unary((req) => tools.listServers(req)),
    callTool: serverStream<pb.CallToolRequest, pb.CallToolEvent>(async (req, call) => {
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort());
      const { result } = await tools.callTool(
        req,
        (progress) => call.write({ event: { $case: 'progress', value: progress } }),
        abort.signal,
      );
      call.write({ event: { $case: 'result', value: { result: result as Record<string, unknown>, isError: result.isError === true } } });
    }),
  };
  return [{ definition: pb.McpGatewayService, implementation }];
}

export const definition: ServiceDefinition<typeof mcpEnv> = {
  service: 'mcp-gateway',
  extraConfig: mcpEnv,
  module: () => McpGatewayModule,
  grpc: (app) => grpcBindings(app.get(ToolsService)),
};

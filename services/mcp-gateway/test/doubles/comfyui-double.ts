import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders, Server, ServerResponse } from 'node:http';
import { WebSocket, WebSocketServer } from 'ws';
import { closeServer, listen, portOf, sendJson, type ReceivedRequest } from './http-double';

/**
 * A test double of the ComfyUI server API (ComfyUI cannot run here): the documented routes
 * POST /prompt, GET /history/<id>, GET /queue, POST /queue, POST /interrupt, GET /system_stats,
 * GET /view and the /ws?clientId= WebSocket with its status, execution_start, executing,
 * progress, executed, execution_success, execution_error and execution_interrupted messages.
 *
 * "Running" a prompt walks its nodes in key order: a KSampler reports `steps` progress
 * messages, a SaveImage node outputs one image. Message order follows ComfyUI's
 * prompt worker: execution_success is sent before the history entry is written, and
 * executing/null after it.
 */
export interface ComfyUiBehaviour {
  /** Node id whose execution raises (execution_error). */
  failNode?: string;
  /** Stay "running" after the progress messages until POST /interrupt. */
  hold?: boolean;
  /** Run the prompt, sending every message, before answering POST /prompt. */
  runBeforeAnswer?: boolean;
}

type Workflow = Record<string, { class_type: string; inputs: Record<string, unknown> }>;

interface Running {
  promptId: string;
  number: number;
  clientId: string;
  workflow: Workflow;
  onInterrupt?: () => void;
}

const OUTPUT_NODES = new Set(['SaveImage', 'PreviewImage']);

export class ComfyUiDouble {
  /** Upgrade requests of the WebSocket, with their headers and client id. */
  readonly sockets: { clientId: string; headers: IncomingHttpHeaders }[] = [];
  /** Prompt ids queued, in order. */
  readonly queued: string[] = [];
  readonly interrupts: unknown[] = [];
  readonly queueDeletes: string[] = [];
  readonly checkpoints = ['sd15.safetensors'];
  behaviour: ComfyUiBehaviour = {};
  private readonly clients = new Map<string, WebSocket>();
  private readonly running = new Map<string, Running>();
  private readonly history = new Map<string, unknown>();
  private counter = 0;
  private imageCounter = 0;

  private constructor(
    private readonly server: Server,
    private readonly wss: WebSocketServer,
    /** Every HTTP request received, in order. */
    readonly requests: ReceivedRequest[],
  ) {}

  static async start(port = 0): Promise<ComfyUiDouble> {
    const requests: ReceivedRequest[] = [];
    const server = await listen((req, res) => self.route(req, res), requests, port);
    const wss = new WebSocketServer({ server, path: '/ws' });
    const self = new ComfyUiDouble(server, wss, requests);
    wss.on('connection', (ws, req) => {
      const clientId = new URL(req.url ?? '/', 'http://double').searchParams.get('clientId') ?? randomUUID().replace(/-/g, '');
      self.sockets.push({ clientId, headers: req.headers });
      self.clients.set(clientId, ws);
      ws.on('close', () => self.clients.delete(clientId));
      ws.send(JSON.stringify({ type: 'status', data: { status: { exec_info: { queue_remaining: self.running.size } }, sid: clientId } }));
    });
    return self;
  }

  get port(): number {
    return portOf(this.server);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** WebSockets currently open to the double. */
  get openSockets(): number {
    return this.clients.size;
  }

  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await closeServer(this.server);
  }

  private route(req: ReceivedRequest, res: ServerResponse): void {
    const key = `${req.method} ${req.path}`;
    if (key === 'GET /system_stats') {
      return sendJson(res, 200, {
        system: { os: 'posix', python_version: '3.12.3', embedded_python: false, comfyui_version: '0.3.40', pytorch_version: '2.7.0', ram_total: 64e9, ram_free: 32e9, argv: ['main.py'] },
        devices: [{ name: 'cuda:0 Test GPU', type: 'cuda', index: 0, vram_total: 24e9, vram_free: 20e9, torch_vram_total: 0, torch_vram_free: 0 }],
      });
    }
    if (key === 'POST /prompt') return this.queuePrompt(req, res);
    if (req.method === 'GET' && req.path.startsWith('/history/')) {
      const id = decodeURIComponent(req.path.slice('/history/'.length));
      const entry = this.history.get(id);
      return sendJson(res, 200, entry ? { [id]: entry } : {});
    }
    if (key === 'GET /queue') {
      const entries = [...this.running.values()].map((r) => [r.number, r.promptId, r.workflow, { client_id: r.clientId }, this.outputNodes(r.workflow)]);
      return sendJson(res, 200, { queue_running: entries, queue_pending: [] });
    }
    if (key === 'POST /queue') {
      const ids: unknown = req.body?.delete;
      if (Array.isArray(ids)) this.queueDeletes.push(...ids.map(String));
      return sendJson(res, 200, {});
    }
    if (key === 'POST /interrupt') {
      this.interrupts.push(req.body ?? {});
      const only: unknown = req.body?.prompt_id;
      for (const r of this.running.values()) if (only === undefined || only === r.promptId) r.onInterrupt?.();
      return sendJson(res, 200, {});
    }
    if (key === 'GET /view') {
      res.writeHead(200, { 'content-type': 'image/png' });
      res.end(Buffer.from(`fake png ${req.query.get('filename')}`));
      return;
    }
    sendJson(res, 404, { error: 'not found' });
  }

  private outputNodes(workflow: Workflow): string[] {
    return Object.keys(workflow).filter((id) => OUTPUT_NODES.has(workflow[id]!.class_type));
  }

  /** Validates like ComfyUI's validate_prompt (for the checks this double knows) and queues. */
  private queuePrompt(req: ReceivedRequest, res: ServerResponse): void {
    const workflow = req.body?.prompt as Workflow | undefined;
    if (!workflow || typeof workflow !== 'object') {
      return sendJson(res, 400, { error: { type: 'no_prompt', message: 'No prompt provided', details: 'No prompt provided', extra_info: {} }, node_errors: {} });
    }
    const outputs = this.outputNodes(workflow);
    if (!outputs.length) {
      return sendJson(res, 400, { error: { type: 'prompt_no_outputs', message: 'Prompt has no outputs', details: '', extra_info: {} }, node_errors: {} });
    }
    const nodeErrors: Record<string, unknown> = {};
    for (const [id, node] of Object.entries(workflow)) {
      const ckpt = node.inputs?.ckpt_name;
      if (ckpt !== undefined && !this.checkpoints.includes(String(ckpt))) {
        nodeErrors[id] = {
          errors: [
            {
              type: 'value_not_in_list',
              message: 'Value not in list',
              details: `ckpt_name: '${String(ckpt)}' not in ${JSON.stringify(this.checkpoints)}`,
              extra_info: { input_name: 'ckpt_name', input_config: null, received_value: ckpt },
            },
          ],
          dependent_outputs: outputs,
          class_type: node.class_type,
        };
      }
    }
    if (Object.keys(nodeErrors).length) {
      return sendJson(res, 400, {
        error: { type: 'prompt_outputs_failed_validation', message: 'Prompt outputs failed validation', details: '', extra_info: {} },
        node_errors: nodeErrors,
      });
    }
    const run: Running = { promptId: randomUUID(), number: this.counter++, clientId: String(req.body?.client_id ?? ''), workflow };
    this.running.set(run.promptId, run);
    this.queued.push(run.promptId);
    const answer = (): void => sendJson(res, 200, { prompt_id: run.promptId, number: run.number, node_errors: {} });
    if (this.behaviour.runBeforeAnswer) {
      this.execute(run);
      answer();
    } else {
      answer();
      setImmediate(() => this.execute(run));
    }
  }

  private send(run: Running, type: string, data: Record<string, unknown>): void {
    const ws = this.clients.get(run.clientId);
    if (ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type, data: { ...data, prompt_id: run.promptId } }));
  }

  private execute(run: Running): void {
    const { behaviour } = this;
    const outputs: Record<string, unknown> = {};
    const executed: string[] = [];
    this.send(run, 'execution_start', { timestamp: Date.now() });
    this.send(run, 'execution_cached', { nodes: [], timestamp: Date.now() });
    for (const [id, node] of Object.entries(run.workflow)) {
      this.send(run, 'executing', { node: id, display_node: id });
      if (behaviour.failNode === id) {
        this.send(run, 'execution_error', {
          node_id: id,
          node_type: node.class_type,
          executed,
          exception_message: 'CUDA out of memory. Tried to allocate 2.00 GiB',
          exception_type: 'torch.OutOfMemoryError',
          traceback: ['Traceback (most recent call last):', '  File "execution.py", line 1, in execute'],
          current_inputs: {},
          current_outputs: {},
          timestamp: Date.now(),
        });
        this.finish(run, outputs, 'error');
        return;
      }
      if (node.class_type === 'KSampler') {
        const steps = Number(node.inputs.steps ?? 1);
        for (let i = 1; i <= steps; i++) this.send(run, 'progress', { value: i, max: steps, node: id });
        if (behaviour.hold) {
          run.onInterrupt = () => {
            this.send(run, 'execution_interrupted', { node_id: id, node_type: node.class_type, executed, timestamp: Date.now() });
            this.finish(run, outputs, 'error');
          };
          return;
        }
      }
      if (OUTPUT_NODES.has(node.class_type)) {
        const output = { images: [{ filename: `ComfyUI_${String(++this.imageCounter).padStart(5, '0')}_.png`, subfolder: '', type: node.class_type === 'SaveImage' ? 'output' : 'temp' }] };
        outputs[id] = output;
        this.send(run, 'executed', { node: id, display_node: id, output });
      }
      executed.push(id);
    }
    this.send(run, 'execution_success', { timestamp: Date.now() });
    setImmediate(() => this.finish(run, outputs, 'success'));
  }

  /** task_done: writes the history entry, then tells the client the prompt is done. */
  private finish(run: Running, outputs: Record<string, unknown>, status: 'success' | 'error'): void {
    this.running.delete(run.promptId);
    this.history.set(run.promptId, {
      prompt: [run.number, run.promptId, run.workflow, { client_id: run.clientId }, this.outputNodes(run.workflow)],
      outputs,
      status: { status_str: status, completed: status === 'success', messages: [] },
      meta: {},
    });
    this.send(run, 'executing', { node: null });
  }
}

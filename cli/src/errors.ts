/** An error the command line reports as one clear message (no stack trace) and an exit status. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Bad arguments: the message says what is wrong and what is accepted. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 1);
    this.name = 'UsageError';
  }
}

/** A failure of the local stack; component names the child (nats-server, postgres, a service) when one is at fault. */
export class StackError extends CliError {
  constructor(
    message: string,
    readonly component?: string,
    readonly logTail?: string,
  ) {
    super(message, 1);
    this.name = 'StackError';
  }
}

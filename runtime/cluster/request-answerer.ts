import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from '../logger.ts';

export interface AnswerLog {
  /** Context for both log lines (the partition, the projection…). */
  details: object;
  subscriptionFailed: string;
  answerFailed: string;
}

/**
 * Answers NATS requests on subjects with an async `serve`, keeping the answers under way so a
 * node that stops can let them finish (bounded) before it closes its connection.
 */
export class RequestAnswerer {
  private readonly answering = new Set<Promise<void>>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly logger: Logger,
  ) {}

  answer(subject: string, serve: (data: Uint8Array) => Promise<Uint8Array>, log: AnswerLog): Subscription {
    return this.nc.subscribe(subject, {
      callback: (error, message) => {
        if (error !== null) {
          this.logger.warn({ err: error, ...log.details }, log.subscriptionFailed);
          return;
        }
        const answer = serve(message.data)
          .then((reply) => {
            message.respond(reply);
          })
          .catch((failure: unknown) => this.logger.warn({ err: failure, ...log.details }, log.answerFailed))
          .finally(() => this.answering.delete(answer));
        this.answering.add(answer);
      },
    });
  }

  /** Waits for the answers under way, at most `waitMs`. */
  async finish(waitMs: number): Promise<void> {
    await Promise.race([Promise.allSettled([...this.answering]), new Promise((resolve) => setTimeout(resolve, waitMs))]);
  }
}

// Failing a worker thread from outside, as a real failure would end it: an uncaught error
// thrown inside the thread (through the inspector, which names each thread "[worker ID]").
import { Session } from "node:inspector/promises";

interface AttachedToWorker {
  params: { sessionId: string; workerInfo: { title: string } };
}

/** Throw `message` uncaught inside the worker thread `threadId`; settles once it is thrown. */
export async function throwInThread(threadId: number, message: string): Promise<void> {
  const session = new Session();
  session.connect();
  try {
    const attached = new Promise<string>((resolve) => {
      session.on("NodeWorker.attachedToWorker", (event: AttachedToWorker) => {
        if (event.params.workerInfo.title.startsWith(`[worker ${threadId}]`)) resolve(event.params.sessionId);
      });
    });
    await session.post("NodeWorker.enable", { waitForDebuggerOnStart: false });
    const sessionId = await attached;
    const expression = `setImmediate(() => { throw new Error(${JSON.stringify(message)}); })`;
    await session.post("NodeWorker.sendMessageToWorker", {
      sessionId,
      message: JSON.stringify({ id: 1, method: "Runtime.evaluate", params: { expression } }),
    });
  } finally {
    session.disconnect();
  }
}

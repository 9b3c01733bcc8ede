// Types for hasses.js, the page helper served by hasses-go at /hasses.js.

export type HassesState = "connecting" | "open" | "closed";

export interface HassesOptions {
  /** Unnamed events ("message"). */
  onmessage?: (e: MessageEvent) => void;
  /** A hasses-reset event: events were lost, reload the page's state. */
  onreset?: (reason: string, e: MessageEvent) => void;
  onstatechange?: (state: HassesState) => void;
  onerror?: (e: Event) => void;
  /** Returns a fresh subscriber token (sent as access_token=); called at
   * start, on hasses-expiring and when the stream is refused. Returning
   * nothing keeps the current one: a getToken that refreshes the
   * hasses_token cookie. */
  getToken?: () => string | void | Promise<string | void>;
  /** Send cookies to another origin (the hasses_token cookie), as
   * EventSource's withCredentials; default false. */
  withCredentials?: boolean;
  /** A token to start with. */
  token?: string;
  /** Milliseconds: never reopen sooner than this after the last open
   * (default 3000); doubled on each failure up to maxRetry (60000). */
  retry?: number;
  maxRetry?: number;
  /** sessionStorage key of the last id (default "hasses:" + url). */
  storageKey?: string;
}

export declare class Hasses {
  constructor(url: string, options?: HassesOptions);
  readonly url: string;
  readonly state: HassesState;
  /** The id of the last event seen, kept across page reloads. */
  readonly lastEventId: string;
  onmessage: ((e: MessageEvent) => void) | null;
  onreset: ((reason: string, e: MessageEvent) => void) | null;
  onstatechange: ((state: HassesState) => void) | null;
  onerror: ((e: Event) => void) | null;
  getToken: (() => string | void | Promise<string | void>) | null;
  readonly withCredentials: boolean;
  /** Named events ("token#name=..." messages), as on EventSource. */
  addEventListener(name: string, fn: (e: MessageEvent) => void): void;
  removeEventListener(name: string, fn: (e: MessageEvent) => void): void;
  /** Stops the stream for good; the stored id is kept. */
  close(): void;
  /** Drops the stored id: the next page starts live. */
  forget(): void;
}

declare global {
  interface Window {
    Hasses: typeof Hasses;
  }
}

/** Who calls the API and what they may do: the types authenticators and authorizers share. */

/** An authenticated caller. */
export interface UserInfo {
  readonly name: string;
  readonly groups: readonly string[];
}

/** What a request wants to do, in Kubernetes' authorization terms. */
export interface RequestAttributes {
  readonly user: UserInfo;
  readonly verb: string;
  /** True for /api and /apis object requests; false for paths like /healthz. */
  readonly resourceRequest: boolean;
  readonly group: string;
  readonly version: string;
  readonly resource: string;
  readonly subresource: string;
  readonly namespace: string | undefined;
  readonly name: string | undefined;
  readonly path: string;
}

export interface Decision {
  readonly allowed: boolean;
  readonly reason?: string;
}

/** Returns a decision, or undefined to leave it to the next authorizer. */
export type Authorizer = (attrs: RequestAttributes) => Decision | undefined | Promise<Decision | undefined>;

/**
 * Counters shared by $SYS, /metrics and the hooks. Plain numbers: the hooks that bump
 * them sit on the per-message path, so no objects or labels are allocated there.
 */
export class BrokerStats {
  /** PUBLISH packets received from clients, allowed or not */
  messagesReceived = 0
  /** PUBLISH packets forwarded to subscribers */
  messagesSent = 0
  /** publishes (and wills) the ACL denied: dropped, the client stays connected */
  publishDeniedByAcl = 0
  /** subscriptions the ACL denied (SUBACK 0x80) */
  subscribeDenied = 0
  /** clients disconnected because their outgoing queue passed limits.maxQueuedBytes */
  slowClientsDisconnected = 0
  /** deliveries dropped because their subscriber was stalled */
  deliveriesDropped = 0
  /** connections refused before MQTT: total or per-IP limit */
  connectionsRefused = 0
  /** packets refused for passing limits.maxPacketSize, or with a malformed length */
  packetsRefused = 0
  /** WebSocket upgrades refused (a malformed handshake), and MQTT-over-WebSocket connections closed for a frame that breaks RFC 6455 or is not binary */
  webSocketRefused = 0
  /** connections closed for a packet that breaks MQTT 3.1.1 (strings not UTF-8, packet id 0, ...) */
  protocolViolations = 0
  /** queued messages dropped, oldest first, from offline sessions over limits.maxQueuedMessages */
  queuedDropped = 0
  /** offline persistent sessions removed after limits.sessionExpiry / userSessionExpiry */
  sessionsExpired = 0
  /** CONNECT refused: bad credentials or client identifier */
  connectsRefused = 0
  /** most clients connected at once */
  clientsMaximum = 0
  /** publishes refused because their journal append failed */
  journalFailures = 0
  /** history readers (SSE, WebSocket) disconnected because their unsent bytes passed limits.maxQueuedBytes */
  slowReadersDisconnected = 0
  /** history requests refused: bad parameters (400), credentials (401), ACL (403), too many streams (429) */
  historyRefused = 0
}

# Firehose callback plugin for Ansible: sends each playbook event to the Firehose Ansible
# receiver (`firehose bridge ansible`), which publishes it on ansible/playbook/<uuid>/...
#
# Python standard library only; ansible-core 2.14 and later. It never fails a playbook and
# never slows one noticeably: short timeouts, and when the receiver cannot be reached the
# events are spooled to a local file and sent, in order, at the next opportunity (the next
# event, or the end of the run, or the next run).
from __future__ import annotations

DOCUMENTATION = '''
    name: firehose
    type: notification
    short_description: send playbook events to a Firehose event bus
    description:
      - Sends playbook start and finish, every task result and the per-host stats to the
        Firehose Ansible receiver over HTTP(S), which publishes them to MQTT topics
        ansible/playbook/<uuid>/...
    requirements:
      - enable in configuration (ANSIBLE_CALLBACKS_ENABLED=firehose)
    options:
      url:
        description: the receiver's events URL
        env:
          - name: FIREHOSE_URL
        ini:
          - section: callback_firehose
            key: url
        required: true
      token:
        description: the receiver's bearer token
        env:
          - name: FIREHOSE_TOKEN
        ini:
          - section: callback_firehose
            key: token
      token_file:
        description: a file holding the bearer token (first line)
        env:
          - name: FIREHOSE_TOKEN_FILE
        ini:
          - section: callback_firehose
            key: token_file
      spool:
        description: where events wait while the receiver is unreachable
        env:
          - name: FIREHOSE_SPOOL
        ini:
          - section: callback_firehose
            key: spool
        default: ~/.ansible/firehose-spool.jsonl
      timeout:
        description: seconds to wait for the receiver (connecting and answering)
        env:
          - name: FIREHOSE_TIMEOUT
        ini:
          - section: callback_firehose
            key: timeout
        type: float
        default: 2
      retry_after:
        description: after a failure, seconds before trying again (the end of the run always tries)
        env:
          - name: FIREHOSE_RETRY_AFTER
        ini:
          - section: callback_firehose
            key: retry_after
        type: float
        default: 10
      cafile:
        description: CA certificate to verify an https receiver
        env:
          - name: FIREHOSE_CAFILE
        ini:
          - section: callback_firehose
            key: cafile
'''

import json
import os
import socket
import ssl
import time
import urllib.error
import urllib.request
import uuid

from ansible.plugins.callback import CallbackBase

CENSORED = "the output has been hidden due to the fact that 'no_log: true' was specified for this result"
STAT_KEYS = ('ok', 'changed', 'unreachable', 'failures', 'skipped', 'rescued', 'ignored')


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'notification'
    CALLBACK_NAME = 'firehose'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.session = str(uuid.uuid1())
        self.controller = socket.getfqdn()
        self.playbook_id = str(uuid.uuid4())
        self.playbook_name = None
        self.started = False
        self.seq = 0
        self.failed_at = None
        self.warned = False

    def set_options(self, task_keys=None, var_options=None, direct=None):
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        self.url = self.get_option('url')
        token = self.get_option('token')
        token_file = self.get_option('token_file')
        if not token and token_file:
            try:
                with open(os.path.expanduser(token_file)) as f:
                    token = f.readline().strip()
            except OSError as e:
                self._warn('cannot read token_file: %s' % e)
        self.token = token or ''
        self.spool = os.path.expanduser(self.get_option('spool'))
        self.timeout = float(self.get_option('timeout'))
        self.retry_after = float(self.get_option('retry_after'))
        cafile = self.get_option('cafile')
        self.ssl_context = ssl.create_default_context(cafile=cafile) if cafile else None

    # --- playbook events ---------------------------------------------------------------

    def v2_playbook_on_play_start(self, play):
        self.playbook_name = play.get_name()
        if not self.started:
            self.started = True
            self._emit('start', {'status': 'OK', 'ansible_type': 'start'})

    def v2_runner_on_ok(self, result, **kwargs):
        self._task(result, 'OK')

    def v2_runner_on_failed(self, result, ignore_errors=False, **kwargs):
        self._task(result, 'FAILED')

    def v2_runner_on_unreachable(self, result, **kwargs):
        self._task(result, 'UNREACHABLE')

    def v2_runner_on_skipped(self, result, **kwargs):
        self._task(result, 'SKIPPED')

    def v2_playbook_on_stats(self, stats):
        failed = False
        for host in sorted(stats.processed.keys()):
            summary = stats.summarize(host)
            counts = {key: int(summary.get(key, 0)) for key in STAT_KEYS}
            failed = failed or counts['failures'] > 0 or counts['unreachable'] > 0
            self._emit('stats', {'ansible_host': host, 'stats': counts})
        status = 'FAILED' if failed else 'OK'
        self._emit('finish', {'status': status}, final=True)

    # --- helpers -----------------------------------------------------------------------

    def _task(self, result, status):
        task_result = dict(result._result)
        if task_result.get('_ansible_no_log') or getattr(result._task, 'no_log', False):
            task_result = {'censored': CENSORED, '_ansible_no_log': True}
        self._emit('task', {
            'status': status,
            'ansible_type': 'task',
            'ansible_task': str(result._task),
            'ansible_host': result._host.get_name(),
            'ansible_result': task_result,
        })

    def _emit(self, kind, fields, final=False):
        try:
            self.seq += 1
            payload = {
                'host': self.controller,
                'session': self.session,
                'playbook_name': self.playbook_name,
                'playbook_id': self.playbook_id,
            }
            payload.update(fields)
            event = {'id': '%s/%d' % (self.playbook_id, self.seq), 'kind': kind, 'payload': payload}
            self._send([json.loads(json.dumps(event, default=str))], final)
        except Exception as e:  # never fail the playbook
            self._warn('could not send an event: %s' % e)

    def _send(self, events, final):
        """Sends the spool first, then `events`, in one request; on failure spools `events`."""
        waiting = self._read_spool()
        if self.failed_at is not None and not final and time.time() - self.failed_at < self.retry_after:
            self._append_spool(events)
            return
        try:
            self._post(waiting + events)
            self.failed_at = None
            if waiting:
                self._truncate_spool()
        except Exception as e:
            self.failed_at = time.time()
            self._append_spool(events)
            self._warn('receiver unreachable (%s): events are spooled in %s' % (e, self.spool))

    def _post(self, events):
        body = json.dumps({'events': events}).encode('utf-8')
        request = urllib.request.Request(self.url, data=body, method='POST', headers={
            'content-type': 'application/json',
            'authorization': 'Bearer %s' % self.token,
        })
        with urllib.request.urlopen(request, timeout=self.timeout, context=self.ssl_context) as response:
            if response.status >= 300:
                raise RuntimeError('HTTP %d' % response.status)

    def _read_spool(self):
        try:
            with open(self.spool) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as e:
            self._warn('unreadable spool %s: %s' % (self.spool, e))
            return []

    def _append_spool(self, events):
        os.makedirs(os.path.dirname(self.spool) or '.', exist_ok=True)
        with open(self.spool, 'a') as f:
            for event in events:
                f.write(json.dumps(event) + '\n')
            f.flush()
            os.fsync(f.fileno())

    def _truncate_spool(self):
        try:
            os.remove(self.spool)
        except FileNotFoundError:
            pass

    def _warn(self, message):
        if not self.warned:  # once per run: a playbook's output is not the place for a flood
            self.warned = True
            self._display.warning('firehose: %s' % message)

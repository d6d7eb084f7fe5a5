"""The requester service (``mpc-requester serve``): an HTTPS API that a requesting agency's
case-management systems call instead of running a command per applicant. It keeps one warm
:class:`~parties.requester.Client` (connections, keys, caches) and answers eligibility checks,
one application at a time or as batch jobs; callers are authenticated by client certificate and
every call is written to the agency's signed audit log.

One module per job: :mod:`.config` (the ``[service]`` file), :mod:`.callers` (who may call),
:mod:`.auditing` (an audit entry per call), :mod:`.models` (what travels), :mod:`.checks`
(applications in, rows out), :mod:`.coalesce` (concurrent checks as one batch), :mod:`.jobs`
(batches in the background), :mod:`.listing` (the rules and their owners' grants), :mod:`.app`
(the routes) and :mod:`.server` (the daemon).
"""

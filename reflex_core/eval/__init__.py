"""``reflex eval``: closed-loop evaluation of a served policy in simulation.

An episode runs a simulated task (an env adapter registered through ``reflex_register_envs``)
against a policy server through the same :class:`~reflex_core.robot.sdk.ActionStream` and
:class:`~reflex_core.robot.control.ControlLoop` a robot uses, at the embodiment's control rate in
*simulated* time (:mod:`reflex_core.eval.simtime`): the measured latency of every request decides
which control tick its chunk lands on, so stale-drop, overlap merging and the deadline behave as
on hardware however fast or slow the simulator steps.

* :mod:`reflex_core.eval.env`: the adapter interface and ``--env NAME/TASK`` resolution;
* :mod:`reflex_core.eval.episode`: one episode -> one JSON record (and a video);
* :mod:`reflex_core.eval.runner`: many episodes, in this process or in Ray actors; sweeps;
* :mod:`reflex_core.eval.stats`: confidence intervals and summaries;
* :mod:`reflex_core.eval.report`: the summary / sweep tables and the PNG;
* :mod:`reflex_core.eval.expert`: a scripted expert behind the wire protocol (harness check);
* :mod:`reflex_core.eval.tiny`: a random-weight tiny model re-labelled for an env's embodiment
  (the chance baseline env plugins' tests export and serve);
* :mod:`reflex_core.eval.embodiment`: the joint-space blocks of an env's embodiment document;
* :mod:`reflex_core.eval.testing`: the checks env plugins' tests share.

Ray, the simulators and the video/plot writers are optional (``reflex-core[eval]``); nothing here
imports them at module import.
"""

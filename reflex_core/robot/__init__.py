"""The robot side: everything that runs next to the robot and talks to ``reflex serve``.

* :mod:`~reflex_core.robot.sdk`: the client (``ActionStream``), its sans-I/O core in ``sansio``;
* :mod:`~reflex_core.robot.control`: ``@connect`` and the chunk execution loop on top of it;
* :mod:`~reflex_core.robot.connect`: ``reflex connect``, the bridge to a robot's shell commands;
* :mod:`~reflex_core.robot.sim`: a simulated arm (NumPy, optionally MuJoCo) to run all of it
  without hardware.
"""

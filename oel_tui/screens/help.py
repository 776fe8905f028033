"""The help screen (?): every key, by screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
oel-tui - watch a language model learn from its own experience

Everywhere
  1 Start   2 Play   3 Experience   4 Rounds   5 Replay   ? this help   q quit (stops a running job cleanly)

Start
  Tab moves between fields; Enter on a run row selects it; L loads the model; N creates the run

Play (an agent and you on the same map, or two agents: versus)
  arrows or W A S D  your move        space  agent step (both in versus)
  r  run / pause the agents           + / -  faster / slower
  n  next map (every board)           v      versus: a second agent
  m  who plays the (first) agent      b      who plays the second agent
  Models to pick: the run's base, each finished round's model (its
  adapters switched on one base) and the teacher (the newest model with
  the run's experience in its prompt). A finished round joins the list.
  Under each board: its tally of wins, legal moves and turns.
  Bars: the probability the model gives each move on this state, read
  after "[" in one forward pass. student = no experience in the prompt;
  teacher = the same weights with the run's experience. In versus each
  board shows what it plays with. ✓ marks the good moves.

Experience
  up/down choose an item   e enable/disable   Enter edit   n write a new lesson   f refresh
  + new this round   - disabled (left out of consolidation)   * edited
  Your lessons (run "you") go to this round's teacher after the extracted experience.
  t teach: a round (teach preset, a few minutes on a laptop) that skips
    extraction and consolidates your lessons; then Play shows the base
    against the taught model on a held-out map. A run that has begun
    rounds of its own teaches in a new run, NAME-teach.

Rounds (work runs in the background; the UI stays live)
  g whole round   x extract   o collect   k consolidate   v evaluate   c cancel (after the current unit)
  t next chart (per round, training steps, in-context curve, table)
  A cancelled or interrupted stage resumes where it stopped when started again.

Replay (the run's saved games)
  filters: round, player, stage, outcome (Tab to reach them)   up/down choose a game
  n / p next / previous turn: board before and after, whole prompt, response, parsed move, reply
"""


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(HELP, id="help-text")

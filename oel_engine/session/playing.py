"""The loaded model and who plays on the Play screen: the base, a round's model, the teacher; their moves and move probabilities."""

from __future__ import annotations

from dataclasses import replace

from ..config import GameConfig, ModelConfig, SamplingConfig
from ..events import StopFlag
from ..games import Game, make_game
from ..play.agents import AgentChoice, choices_for
from ..play.policies import TurnRequest
from ..play.prompts import insert_experience, turn_messages
from ..run.artifacts import RunArtifacts
from ..run.loop_config import open_loop_run
from ..run.store import RunStore
from .views import AgentMove, Status
from .views import quiet as _quiet


class Playing:
    def load_model(self, model: ModelConfig, status: Status = _quiet) -> str:
        from ..model.loader import load_language_model

        self.lm = load_language_model(model, status=status)
        self._adapters = None
        return self.lm.name

    def ensure_model(self, model: ModelConfig, status: Status = _quiet):
        """The loaded model if it is `model` (same name, device, dtype), else `model` loaded; either
        way with `model`'s thinking switch and batch size (settings read at each use, not at
        load), so every stage of a run prompts and batches as the run says."""
        current = self.lm.config if self.lm is not None else None
        if current is None or (current.model, current.device, current.dtype) != (model.model, model.device, model.dtype):
            self.load_model(model, status)
        elif (current.thinking, current.batch_size) != (model.thinking, model.batch_size):
            self.lm.config = replace(current, thinking=model.thinking, batch_size=model.batch_size)
        return self.lm

    def model_name(self) -> str | None:
        return self.lm.name if self.lm is not None else None

    def new_game(self, game: GameConfig, seed: int) -> Game:
        g = make_game(game)
        g.reset(seed)
        return g

    def agent_choices(self, run: str | None) -> list[AgentChoice]:
        """Who can play on the Play screen: the base, every finished round's model, and the
        teacher when the run has experience or lessons (read now: a round that has just finished
        elsewhere is listed)."""
        if not run or not (self.saves / run).is_dir():
            return choices_for(None, 0, False)
        with RunStore(self.saves, run, readonly=True) as store:
            adapters = len(RunArtifacts(store).adapters())
        return choices_for(run, adapters, self.teacher_context(run) is not None)

    def use_agent(self, agent: AgentChoice | None, status: Status = _quiet) -> str | None:
        """Make the loaded weights `agent`'s (the run's base model, loaded if another is, with its
        round adapters switched on as the choice says). Returns the experience its prompt reads."""
        if agent is None or agent.run is None:
            return None
        from ..model.loader import restore_base
        from ..model.round_adapters import RoundAdapters
        from ..model.round_weights import apply_rounds, is_full_model

        store, config = open_loop_run(self.saves, agent.run, None, readonly=True)
        try:
            folders, run_key = RunArtifacts(store).adapters(), str(store.path.resolve())
        finally:
            store.close()
        lm = self.ensure_model(config.model, status)
        if self._adapters is None or self._adapters.lm is not lm:
            self._adapters = RoundAdapters(lm)
        if any(is_full_model(f) for f in folders[:agent.rounds]):
            # full fine-tuned rounds hold whole models: that round's weights are loaded instead
            self._adapters.release()
            apply_rounds(lm, run_key, folders, agent.rounds, status)
        else:
            if lm.merged != (None, 0):  # a stage in this process merged rounds in, or an --adapter: the base first
                self._adapters.release()
                status("Reloading the base model...")
                restore_base(lm, status)
            self._adapters.select(run_key, folders, agent.rounds)
        return self.teacher_context(agent.run) if agent.teacher else None

    def release_agents(self) -> None:
        """The plain base weights back in the loaded model (before a stage or a merge uses it)."""
        if self._adapters is not None:
            self._adapters.release()

    def agent_move(self, game: Game, sampling: SamplingConfig, agent: AgentChoice | None = None) -> AgentMove:
        """One move by `agent` (default: the loaded model as it is), or a random legal move
        when no model is loaded and no run's model is asked for."""
        experience = self.use_agent(agent)
        request = TurnRequest(("tui", game.seed), turn_messages(game.player_description, game.messages, experience),
                              game.board(), game.legal_moves(), game.turns)
        if self.lm is None:
            return AgentMove(self._random.act([request])[0].text)
        from ..play.policies import ModelPolicy

        reply = ModelPolicy(self.lm, sampling, seed=game.turns).act([request])[0]
        return AgentMove(reply.text, reply.response_tokens)

    def move_probs(self, game: Game, experience: str | None = None, agent: AgentChoice | None = None):
        """The probe on the current state of `game` with `agent`'s weights (default: the loaded
        model as it is): (student: the plain prompt, teacher: `experience` inserted, or None; good
        moves). Without a model, the student is a random legal-move player's uniform choice."""
        from ..evaluation.move_probe import MoveProbe, state_of, uniform_legal

        self.use_agent(agent)
        state = state_of(game)
        if self.lm is None:
            return uniform_legal([state])[0], None, state.good
        probe = MoveProbe(self.lm, 2)
        prompts = [state.prompt] + ([insert_experience(state.prompt, experience)] if experience else [])
        read = probe.read(prompts)
        return read[0], (read[1] if experience else None), state.good

    def probe_held_out(self, game: GameConfig, episodes: int, experience: str | None = None,
                       stop: StopFlag | None = None) -> dict:
        """good_move_prob on the held-out start states: the loaded model (with `experience` in its
        prompt), or a random legal-move player without one. The probe samples nothing, so its
        spread over samples is 0; `good_move_prob_se` is the spread over maps."""
        from ..evaluation.move_probe import held_out_probe, start_states

        result = held_out_probe(self.lm, start_states(game, episodes), experience, stop)
        return {**result.summary(), "good_move_prob_std": 0.0}

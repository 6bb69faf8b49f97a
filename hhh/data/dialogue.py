"""The dialogue format, exactly as the paper writes it, in one place.

Turns are "Human: ..." and "Assistant: ..." separated by blank lines. Every turn starts with "\\n\\n" so dialogues
concatenate (a prompt, then a conversation) without special cases. A query is posed as

    "{history}\\n\\nHuman: {query}\\n\\nAssistant:"

and the model continues after "Assistant:" with a response that starts with a space (" {reply}").

Context and response are tokenised separately everywhere (data pipeline, evaluations, sampler). With the byte
vocabulary and byte-level BPE tokenizers ("hf:", GPT-2/Pythia/Llama-3) the context's ids are then a prefix of the
whole dialogue's ids: ":" and " reply" never merge. What SentencePiece-converted Hugging Face tokenizers (Llama-2,
Mistral) do at that boundary is spelled out in hhh/data/vocab/hf.py.
"""
from __future__ import annotations

from typing import Iterable, Tuple

HUMAN = "Human:"
ASSISTANT = "Assistant:"
TURN_SEPARATOR = "\n\n"
HUMAN_TURN = TURN_SEPARATOR + HUMAN  # where the human's next turn begins: the stop string of sampling


def turn(role: str, text: str) -> str:
  label = {"human": HUMAN, "assistant": ASSISTANT}[role]
  return f"{TURN_SEPARATOR}{label} {text}"


def query(text: str, history: str = "") -> str:
  """The context that asks the assistant to answer `text` (ends with "Assistant:", no trailing space)."""
  return f"{history}{TURN_SEPARATOR}{HUMAN} {text}{TURN_SEPARATOR}{ASSISTANT}"


def response(text: str) -> str:
  """A response as it follows a context from `query` (leading space after "Assistant:")."""
  return f" {text}"


def dialogue(turns: Iterable[Tuple[str, str]]) -> str:
  """[(role, text), ...] with role in {"human", "assistant"} -> the whole conversation."""
  return "".join(turn(role, text) for role, text in turns)


def split_last_response(text: str) -> Tuple[str, str]:
  """Splits a whole dialogue into (context ending in "Assistant:", final response with its leading space).

  Raises ValueError when the dialogue has no assistant turn.
  """
  marker = f"{TURN_SEPARATOR}{ASSISTANT}"
  i = text.rfind(marker)
  if i < 0:
    raise ValueError("dialogue has no assistant turn")
  j = i + len(marker)
  return text[:j], text[j:]


def bigbench_context(text: str) -> str:
  """BIG-bench's convention for hhh_alignment ("\\nHuman: {input}\\nAssistant:"), for cross-tool comparability."""
  return f"\n{HUMAN} {text}\n{ASSISTANT}"


def pretraining_as_dialogue(text: str) -> str:
  """Pretraining-style text placed after "Human:" so it reads as a new conversation (context distillation)."""
  return turn("human", text)


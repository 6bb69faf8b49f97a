"""Toxicity scorers (hhh.eval.toxicity_scorers): the offline classifier on clear cases, batching and order; the
Perspective client against a fake server on loopback (request format, retries with backoff and Retry-After, final
failures as None counted by reason, rate limiting on a fake clock, the key kept out of describe()); Detoxify's
install/download errors (and a tiny Detoxify-format checkpoint when torch and transformers are installed)."""
import http.server
import json
import random
import socket
import sys
import threading
import time
import types
import urllib.parse

import pytest

from hhh.core.errors import ConfigError
from hhh.eval import toxicity_scorers as ts
from hhh.eval.toxicity_scorers import perspective

KEY = "test-key-Zq8/+x"
PATH = "/v1alpha1/comments:analyze"

PROFANE = "You are a fucking idiot, shut the fuck up."
POLITE = "Thank you so much for your help, have a wonderful day."
TEXTS = [PROFANE, POLITE, "I really appreciate your kindness.", "What a piece of shit.", "The weather is nice today."]


# ---------------------------------------------------------------------------------------------------------- offline


@pytest.fixture(scope="module")
def offline():
  return ts.make_scorer("offline")


def test_offline_clear_cases(offline):
  profane, polite = offline.score([PROFANE, POLITE])
  assert profane > 0.9  # 0.99999999999999
  assert polite < 0.3  # 0.0030
  assert 0.0 < polite < profane <= 1.0


def test_offline_batched_equals_one_by_one_and_order(offline):
  one_by_one = [offline.score([t])[0] for t in TEXTS]
  assert offline.score(TEXTS) == one_by_one
  assert offline.score(TEXTS[::-1]) == one_by_one[::-1]
  small = ts.OfflineScorer(batch_size=2)
  assert small.score(TEXTS) == one_by_one
  assert [s > 0.5 for s in one_by_one] == [True, False, False, True, False]


def test_offline_batches_and_skips_empty_texts(offline, monkeypatch):
  scorer = ts.OfflineScorer(batch_size=2)
  calls = []
  real = scorer._predict_prob

  def recording(batch):
    calls.append(list(batch))
    return real(batch)

  monkeypatch.setattr(scorer, "_predict_prob", recording)
  texts = ["", TEXTS[0], "   \n", TEXTS[1], TEXTS[2], TEXTS[3], "\t"]
  scores = scorer.score(texts)
  assert calls == [TEXTS[0:2], TEXTS[2:4]]
  assert scores[0] == 0.0 and scores[2] == 0.0 and scores[6] == 0.0
  assert scores[1] == offline.score([TEXTS[0]])[0]
  assert scores[5] == offline.score([TEXTS[3]])[0]
  assert scorer.score([]) == []
  assert scorer.score(["", " "]) == [0.0, 0.0] and len(calls) == 2  # no model call for empty texts only
  with pytest.raises(TypeError):
    scorer.score("one string")


def test_offline_describe(offline):
  d = offline.describe()
  assert d["name"] == "offline" and d["package"] == "alt-profanity-check" and d["version"] == "1.9.1"
  assert "not Perspective's TOXICITY" in d["measures"] and "not calibrated" in d["measures"]


def test_offline_missing_package(monkeypatch):
  monkeypatch.setitem(sys.modules, "profanity_check", None)
  with pytest.raises(ConfigError, match=r"pip install 'alt-profanity-check==1\.9\.1'"):
    ts.make_scorer("offline")


# ------------------------------------------------------------------------------------------------------ perspective


class FakeClock:
  """Monotonic time that moves only when slept; records the sleeps."""

  def __init__(self):
    self.t = 100.0
    self.sleeps = []

  def __call__(self):
    return self.t

  def sleep(self, s):
    assert s >= 0
    self.sleeps.append(s)
    self.t += s


def _score_for(text):
  return round(len(text) / 100, 4)


class FakePerspective:
  """Perspective on 127.0.0.1: answers from `plan` (status, headers, body or None for a real score) in order, then
  with real scores; records every request (path, query, headers, JSON body, fake-clock time)."""

  def __init__(self, clock=None):
    self.plan = []
    self.requests = []
    self.clock = clock
    self.delay_first_s = 0.0
    fake = self

    class Handler(http.server.BaseHTTPRequestHandler):
      def do_POST(self):
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        try:
          body = json.loads(raw)
        except ValueError:
          body = raw
        url = urllib.parse.urlsplit(self.path)
        fake.requests.append(dict(method="POST", path=url.path, query=urllib.parse.parse_qs(url.query),
                                  content_type=self.headers["Content-Type"], body=body,
                                  t=fake.clock() if fake.clock else None))
        if fake.delay_first_s and len(fake.requests) == 1:
          time.sleep(fake.delay_first_s)
        status, headers, out = fake.plan.pop(0) if fake.plan else (200, {}, None)
        if out is None:
          text = body["comment"]["text"]
          out = json.dumps({"attributeScores": {"TOXICITY": {"spanScores": [], "summaryScore": {
            "value": _score_for(text), "type": "PROBABILITY"}}}, "languages": ["en"]})
        if callable(out):
          out = out(self)
        out = out.encode() if isinstance(out, str) else out
        try:
          self.send_response(status)
          for k, v in headers.items():
            self.send_header(k, v)
          self.send_header("Content-Type", "application/json")
          self.send_header("Content-Length", str(len(out)))
          self.end_headers()
          self.wfile.write(out)
        except OSError:  # the client gave up (timeout test)
          pass

      def log_message(self, *args):
        pass

    class Server(http.server.ThreadingHTTPServer):
      daemon_threads = True

      def handle_error(self, request, client_address):
        pass

    self.server = Server(("127.0.0.1", 0), Handler)
    self.url = f"http://127.0.0.1:{self.server.server_address[1]}{PATH}"
    self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
    self.thread.start()

  def close(self):
    self.server.shutdown()
    self.server.server_close()


@pytest.fixture
def clock():
  return FakeClock()


@pytest.fixture
def fake(clock):
  f = FakePerspective(clock)
  yield f
  f.close()


@pytest.fixture
def key(monkeypatch):
  monkeypatch.setenv("PERSPECTIVE_API_KEY", KEY)
  return KEY


def _scorer(fake, clock, qps=1000.0, retries=5, timeout_s=5.0, jitter=0.0, **kw):
  return ts.PerspectiveScorer(fake.url, qps=qps, retries=retries, timeout_s=timeout_s, clock=clock,
                              sleep=clock.sleep, jitter=jitter, **kw)


def _backoffs(clock):
  """The backoff sleeps (qps=1000 also spaces requests by 1 ms sleeps)."""
  return [s for s in clock.sleeps if s > 0.01]


def _error(message):
  return json.dumps({"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}})


def test_perspective_request_format_and_scores(fake, clock, key):
  scorer = _scorer(fake, clock)
  texts = ["hello there", "", "you absolute walnut", "  "]
  assert scorer.score(texts) == [_score_for("hello there"), 0.0, _score_for("you absolute walnut"), 0.0]
  assert len(fake.requests) == 2  # no request for empty texts
  r = fake.requests[0]
  assert r["method"] == "POST" and r["path"] == PATH and r["query"] == {"key": [KEY]}
  assert r["content_type"].startswith("application/json")
  assert r["body"] == {"comment": {"text": "hello there"}, "languages": ["en"], "requestedAttributes": {"TOXICITY": {}},
                       "doNotStore": True}
  assert fake.requests[1]["body"]["comment"]["text"] == "you absolute walnut"
  d = scorer.describe()
  assert (d["requests"], d["retries"], d["failed"], d["scored"]) == (2, 0, 0, 2)
  assert d["failure_reasons"] == {} and d["endpoint"] == fake.url
  assert clock.sleeps == [pytest.approx(0.001)]  # the rate limiter (qps 1000) between the two requests


def test_perspective_via_make_scorer(fake, key):
  scorer = ts.make_scorer("perspective", perspective_url=fake.url, perspective_qps=1000.0)
  assert scorer.name == "perspective"
  assert scorer.score(["abc"]) == [_score_for("abc")]


def test_perspective_429_retry_after_then_ok(fake, clock, key):
  fake.plan = [(429, {"Retry-After": "7"}, _error("quota")), (429, {}, _error("quota")), (200, {}, None)]
  scorer = _scorer(fake, clock)
  assert scorer.score(["some text"]) == [_score_for("some text")]
  assert _backoffs(clock) == [7.0, 2.0]  # Retry-After obeyed, then the backoff of the second retry (1 s * 2)
  d = scorer.describe()
  assert (d["requests"], d["retries"], d["failed"], d["scored"]) == (3, 2, 0, 1)
  assert d["retry_reasons"] == {"HTTP 429": 2} and d["failure_reasons"] == {}


def test_perspective_500_forever_fails_after_retries_with_capped_backoff(fake, clock, key):
  fake.plan = [(500, {}, "internal error")] * 9
  scorer = _scorer(fake, clock, retries=8)
  scores = scorer.score(["x", "fine"])
  assert scores[0] is None  # never 0
  assert scores[1] == _score_for("fine")
  assert _backoffs(clock) == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
  d = scorer.describe()
  assert (d["requests"], d["retries"], d["failed"], d["scored"]) == (10, 8, 1, 1)
  assert d["failure_reasons"] == {"HTTP 500": 1} and d["retry_reasons"] == {"HTTP 500": 8}
  assert d["failure_examples"]["HTTP 500"] == ["internal error"]


def test_perspective_backoff_jitter_bounded(fake, clock, key):
  fake.plan = [(503, {}, "")] * 3
  scorer = _scorer(fake, clock, retries=2, jitter=0.25, rng=random.Random(0))
  assert scorer.score(["x"]) == [None]
  assert len(clock.sleeps) == 2
  assert 1.0 <= clock.sleeps[0] <= 1.25 and 2.0 <= clock.sleeps[1] <= 2.5
  assert clock.sleeps != [1.0, 2.0]


def test_perspective_400_not_retried(fake, clock, key):
  fake.plan = [(400, {}, lambda h: _error(f"Attribute TOXICITY does not support request languages: xx ({h.path})"))]
  scorer = _scorer(fake, clock)
  assert scorer.score(["bonjour", "hi"]) == [None, _score_for("hi")]
  assert _backoffs(clock) == []
  d = scorer.describe()
  assert (d["requests"], d["retries"], d["failed"], d["scored"]) == (2, 0, 1, 1)
  assert d["failure_reasons"] == {"HTTP 400": 1}
  (example,) = d["failure_examples"]["HTTP 400"]
  assert example.startswith("Attribute TOXICITY does not support request languages: xx")
  assert "<key>" in example  # the server echoed the URL with the key: redacted
  assert KEY not in json.dumps(d) and urllib.parse.quote(KEY, safe="") not in json.dumps(d)


def test_perspective_malformed_responses_are_none(fake, clock, key):
  fake.plan = [(200, {}, "{not json"), (200, {}, json.dumps({"attributeScores": {}})),
               (200, {}, json.dumps({"attributeScores": {"TOXICITY": {"summaryScore": {"value": 1.5}}}})),
               (200, {}, None)]
  scorer = _scorer(fake, clock)
  assert scorer.score(["a", "b", "c", "dd"]) == [None, None, None, _score_for("dd")]
  d = scorer.describe()
  assert (d["requests"], d["retries"], d["failed"], d["scored"]) == (4, 0, 3, 1)
  assert d["failure_reasons"] == {"bad response": 3}


def test_perspective_rate_limit_spacing(fake, clock, key):
  scorer = _scorer(fake, clock, qps=2.0)
  texts = ["one", "two", "three", "four"]
  assert scorer.score(texts) == [_score_for(t) for t in texts]
  times = [r["t"] for r in fake.requests]
  assert times == [100.0, 100.5, 101.0, 101.5]
  assert all(b - a >= 0.5 for a, b in zip(times, times[1:]))
  assert clock.sleeps == [0.5, 0.5, 0.5]
  scorer.score(["five"])  # still spaced across calls
  assert fake.requests[-1]["t"] == 102.0


def test_perspective_rate_limiter_does_not_sleep_when_time_passed():
  clock = FakeClock()
  limiter = perspective._RateLimiter(2.0, clock, clock.sleep)
  limiter.wait()
  clock.t += 3.0  # a slow request
  limiter.wait()
  assert clock.sleeps == []
  limiter.wait()
  assert clock.sleeps == [0.5]


def test_perspective_timeout_is_retried(fake, clock, key):
  fake.delay_first_s = 1.0
  scorer = _scorer(fake, clock, timeout_s=0.2)
  assert scorer.score(["slow"]) == [_score_for("slow")]
  d = scorer.describe()
  assert (d["requests"], d["retries"], d["failed"]) == (2, 1, 0)
  assert d["retry_reasons"] == {"timeout": 1}
  assert _backoffs(clock) == [1.0]


def test_perspective_connection_error(clock, key):
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  scorer = ts.PerspectiveScorer(f"http://127.0.0.1:{port}{PATH}", qps=1000.0, retries=2, clock=clock,
                                sleep=clock.sleep, jitter=0.0)
  assert scorer.score(["x"]) == [None]
  d = scorer.describe()
  assert (d["requests"], d["retries"], d["failed"]) == (3, 2, 1)
  assert d["failure_reasons"] == {"connection error": 1}
  assert clock.sleeps == [1.0, 2.0]


def test_perspective_missing_key(monkeypatch):
  monkeypatch.delenv("PERSPECTIVE_API_KEY", raising=False)
  with pytest.raises(ConfigError, match="PERSPECTIVE_API_KEY"):
    ts.make_scorer("perspective")
  monkeypatch.setenv("PERSPECTIVE_API_KEY", "  ")
  with pytest.raises(ConfigError, match="PERSPECTIVE_API_KEY"):
    ts.make_scorer("perspective")


def test_perspective_bad_settings(key):
  with pytest.raises(ConfigError, match="perspective_qps"):
    ts.make_scorer("perspective", perspective_qps=0)
  with pytest.raises(ConfigError, match="perspective_retries"):
    ts.make_scorer("perspective", perspective_retries=-1)
  with pytest.raises(ConfigError, match="perspective_timeout_s"):
    ts.make_scorer("perspective", perspective_timeout_s=0)
  with pytest.raises(ConfigError, match="perspective_url"):
    ts.make_scorer("perspective", perspective_url="ftp://example.com")


def test_perspective_describe_has_no_key(key):
  scorer = ts.make_scorer("perspective")
  d = scorer.describe()
  assert d["endpoint"] == ts.PERSPECTIVE_URL
  assert (d["requests"], d["retries"], d["failed"]) == (0, 0, 0)
  assert KEY not in json.dumps(d) and "test-key" not in repr(d)


# --------------------------------------------------------------------------------------------------------- detoxify


def test_detoxify_without_packages(monkeypatch):
  for mod in ("torch", "transformers", "detoxify"):
    monkeypatch.setitem(sys.modules, mod, None)
  with pytest.raises(ConfigError) as e:
    ts.make_scorer("detoxify")
  msg = str(e.value)
  assert "pip install detoxify" in msg and "torch and transformers" in msg
  assert "detoxify_checkpoint is not set" in msg and "toxic_original-c1212f89.ckpt" in msg
  assert "detoxify_config_dir is not set" in msg and "bert-base-uncased" in msg


def test_detoxify_missing_weights(monkeypatch, tmp_path):
  for mod in ("torch", "transformers"):
    monkeypatch.setitem(sys.modules, mod, types.ModuleType(mod))
  with pytest.raises(ConfigError) as e:
    ts.make_scorer("detoxify", detoxify_model="unbiased", detoxify_checkpoint=str(tmp_path / "nope.ckpt"),
                   detoxify_config_dir=str(tmp_path))
  msg = str(e.value)
  assert "pip install" not in msg
  assert f"detoxify_checkpoint {tmp_path / 'nope.ckpt'} does not exist" in msg
  assert "toxic_debiased-c7548aa0.ckpt" in msg
  assert f"detoxify_config_dir {tmp_path} has no config.json" in msg and "roberta-base" in msg


def test_detoxify_unknown_model():
  with pytest.raises(ConfigError, match="detoxify_model must be one of original, unbiased, multilingual"):
    ts.make_scorer("detoxify", detoxify_model="huge")


def test_detoxify_tiny_checkpoint(tmp_path):
  """A random 1-layer BERT saved in Detoxify's checkpoint format: the scorer equals sigmoid(logits)[:, toxic]."""
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  words = ["you", "are", "a", "nice", "bad", "person", "hello", "world"]
  vocab = tmp_path / "cfg" / "vocab.txt"
  vocab.parent.mkdir()
  vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n")
  tokenizer = transformers.BertTokenizer(str(vocab))
  tokenizer.save_pretrained(str(vocab.parent))
  base = transformers.BertConfig(vocab_size=len(words) + 5, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=16, max_position_embeddings=32)
  base.save_pretrained(str(vocab.parent))  # like bert-base-uncased's config.json: no num_labels
  classes = ["severe_toxic", "toxic", "obscene", "threat", "insult", "identity_hate"]
  torch.manual_seed(0)
  config = transformers.BertConfig(**base.to_dict())
  config.num_labels = 6
  model = transformers.BertForSequenceClassification(config).eval()
  with torch.no_grad():
    for p in model.parameters():
      p.normal_(0.0, 0.5)
  ckpt = tmp_path / "tiny.ckpt"
  arch = {"model_type": "bert-base-uncased", "model_name": "BertForSequenceClassification",
          "tokenizer_name": "BertTokenizer", "num_classes": 6}
  torch.save({"config": {"arch": {"args": arch}, "dataset": {"args": {"classes": classes}}},
              "state_dict": model.state_dict()}, str(ckpt))
  scorer = ts.make_scorer("detoxify", detoxify_checkpoint=str(ckpt), detoxify_config_dir=str(vocab.parent))
  texts = ["you are a nice person", "", "hello", "you are a bad bad bad person world"]
  got = scorer.score(texts)
  with torch.no_grad():
    enc = tokenizer([texts[0], texts[2], texts[3]], return_tensors="pt", padding=True)
    want = torch.sigmoid(model(**enc).logits)[:, 1].tolist()
  assert got[1] == 0.0
  assert [got[0], got[2], got[3]] == pytest.approx(want, abs=1e-6)
  assert max(want) - min(want) > 0.01  # the texts score differently
  assert ts.DetoxifyScorer("original", str(ckpt), str(vocab.parent), batch_size=1).score(texts) == pytest.approx(
    got, abs=1e-6)
  d = scorer.describe()
  assert d["base_model"] == "bert-base-uncased" and d["model"] == "original" and d["checkpoint"] == str(ckpt)
  other = tmp_path / "other"
  tokenizer.save_pretrained(str(other))
  transformers.BertConfig(**{**base.to_dict(), "hidden_size": 16}).save_pretrained(str(other))
  with pytest.raises(ConfigError, match="does not fit the model built from detoxify_config_dir"):
    ts.make_scorer("detoxify", detoxify_checkpoint=str(ckpt), detoxify_config_dir=str(other))


# ---------------------------------------------------------------------------------------------------------- factory


def test_make_scorer_unknown_name():
  with pytest.raises(ConfigError, match="unknown toxicity scorer 'toxigen': choose one of offline, perspective, "
                                        "detoxify"):
    ts.make_scorer("toxigen")
  assert ts.SCORERS == ("offline", "perspective", "detoxify")

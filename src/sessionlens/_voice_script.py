"""The words of the synthetic calls: who phones, what they say, and what the agent answers.

This private module owns all the text of :mod:`sessionlens.datasets`' simulated calls: caller
and child names, phone formats, the utterance templates per intent, the agent's system prompt,
tool arguments and results, failing-tool errors and spoken replies. It is kept apart from the
session mechanics in ``_synthetic`` (ids, timing, tokens, cost, planted answers) so either can
be read and edited without wading through the other.

It holds no ``Random`` of its own: every helper that chooses takes the generator's ``rng`` and
draws from it in a fixed order, so a seed still gives the same bytes.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any


def _words(text: str, sep: str | None = None) -> list[str]:
    return text.split(sep)


_GIRLS = _words("Mia Ava Zoe Lily Emma Sofia Chloe Nora Isla Maya Hazel Ruby Aria Layla")
_BOYS = _words("Leo Noah Eli Sam Max Owen Liam Theo Jack Milo Ezra Finn Mateo Kai")
_PARENTS = _words(
    "Sarah Chen|Michael Johnson|Priya Patel|Carlos Ramirez|Jessica Nguyen|David Kim|"
    "Aisha Mohammed|Emily Brooks|Jamal Washington|Laura Schmidt|Daniel Okafor|Hannah Levi|"
    "Marisol Torres|Kevin O'Brien|Yuki Tanaka|Rachel Goldberg|Tom Becker|Fatima Ali",
    sep="|",
)
_AREAS = ["415", "510", "650", "408", "707", "925"]
_PHONE_FORMATS = [
    "({a}) 555-{n}",
    "{a}-555-{n}",
    "+1 {a} 555 {n}",
    "{a}.555.{n}",
    "{a} 555 {n}",
]
_WEEKDAYS = _words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
_MONTHS = _words(
    "January February March April May June July August September October November December"
)
_NUMBERS = {2: "two", 3: "three"}
_OPENERS = {
    "booking": [
        "Hi, I'd like to book a cleaning for {kids}.",
        "Hello, I need to make a dentist appointment for {kids}.",
        "Hi there, can I schedule checkups for {kids}?",
        "Yeah hi, I'm calling to set up a visit for {kids}.",
    ],
    "rescheduling": [
        "Hi, I need to move the appointment for {kids}.",
        "Hello, can we reschedule the checkup for {kids}?",
        "Something came up and I have to change the visit for {kids}.",
    ],
    "cancellation": [
        "Hi, I need to cancel the appointment for {kids}.",
        "Hello, we have to cancel {kids}'s cleaning, sorry.",
        "Hi, I'm calling to cancel a visit for {kids}.",
    ],
}
_INFO = {  # topic -> (caller question, clinic answer); {kids} only in some
    "hours": ("Hi, what are your hours on Saturdays?", "We're open Saturdays 9am to 1pm."),
    "location": (
        "Where exactly are you located, and is there parking?",
        "We're at 1200 Valencia Street, with free parking behind the building.",
    ),
    "insurance": (
        "Do you take Delta Dental for {kids}?",
        "Yes, we're in network with Delta Dental PPO and most Medi-Cal plans.",
    ),
    "age_policy": (
        "At what age do you start seeing kids? I'm asking for {kids}.",
        "We see children from their first tooth, usually around age one.",
    ),
}
_OTHER = [
    "Hi, I have a question about a bill I got last week.",
    "I think I was charged twice for the last visit.",
    "Can I talk to someone about a payment plan?",
]
_IDENTITY = [
    "This is {parent}, my number is {phone}.",
    "My name's {parent}, you can reach me at {phone}.",
    "It's {parent}. Phone number {phone}.",
    "{parent} here, the number on file should be {phone}.",
]
_DATE_ASKS = {
    "booking": ["Do you have anything {d}?", "We're hoping for {d}.", "Could we come in {d}?"],
    "rescheduling": ["Can we move it to {d}?", "Maybe {d} instead?"],
    "cancellation": ["It's the appointment {d}.", "The one we had {d}."],
}
_FILLERS = ["Yes, that works.", "Okay, sure.", "Yes please, go ahead.", "Great, thank you."]
_SYSTEM = (
    "You are Molly, the phone assistant of Bright Smiles Pediatric Dentistry in San Francisco. "
    "Callers are parents booking, moving or cancelling visits for their children, or asking "
    "about the clinic. Confirm the guardian's name and phone number, use the tools to look up "
    "patients and appointments, never invent availability, keep answers short and friendly "
    "because they are read aloud, and offer a transfer to the front desk when you cannot help."
)
_ERRORS = [
    ("TimeoutError", "scheduling API did not respond within 5s"),
    ("HTTPError", "503 Service Unavailable from practice management system"),
    ("ConnectionResetError", "connection to pms.brightsmiles.internal reset by peer"),
]


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _family(rng: random.Random) -> dict[str, Any]:
    """A new caller: parent name, children (name -> ``"f"``/``"m"``) and phone parts."""
    kids: dict[str, str] = {}
    for _ in range(rng.choices([1, 2, 3], [0.55, 0.3, 0.15])[0]):
        g = rng.choice("fm")
        kids[rng.choice([n for n in (_GIRLS if g == "f" else _BOYS) if n not in kids])] = g
    area, line = rng.choice(_AREAS), f"01{rng.randrange(100):02d}"
    return {"parent": rng.choice(_PARENTS), "kids": kids, "area": area, "line": line}


def _kids_phrase(rng: random.Random, kids: dict[str, str]) -> str:
    (*head, tail), genders = list(kids), set(kids.values())
    if not head:
        word = "daughter" if "f" in genders else "son"
        return rng.choice([f"my {word} {tail}", f"my kid, {tail}", f"my little {tail}"])
    joined = f"{', '.join(head)} and {tail}"
    options = [f"my {_NUMBERS[len(kids)]} kids, {joined}", f"my kids {joined}"]
    if len(genders) == 1:
        options.append(f"my {'girls' if 'f' in genders else 'boys'}, {joined}")
    return rng.choice(options)


def _date_phrase(rng: random.Random, day0: date) -> tuple[str, date]:
    delta = rng.randint(1, 7) if rng.random() < 0.4 else rng.randint(8, 30)
    d = day0 + timedelta(days=delta)
    forms = [f"on {d.isoformat()}", f"on {_MONTHS[d.month - 1]} {_ordinal(d.day)}"]
    if delta <= 7:  # "next <weekday>" = the first such weekday after the call's date
        forms += [f"next {_WEEKDAYS[d.weekday()]}"] * 2
    if delta == 1:
        forms.append("tomorrow")
    return rng.choice(forms), d


def _utterances(
    rng: random.Random, intent: str, fam: dict[str, Any], day0: date
) -> tuple[str, dict[str, str], list[date], str, list[str]]:
    """What a caller of ``fam`` with ``intent`` says on a call on ``day0``, before fillers.

    Returns the phone number as spoken, the children the call is about, the requested
    dates, the info topic (``""`` unless ``info_lookup``) and the utterance fragments.
    """
    phone = rng.choice(_PHONE_FORMATS).format(a=fam["area"], n=fam["line"])
    kids: dict[str, str] = fam["kids"]
    dates: list[date] = []
    topic = ""
    if intent in _OPENERS:
        opener = rng.choice(_OPENERS[intent]).format(kids=_kids_phrase(rng, kids))
    elif intent == "info_lookup":
        topic = rng.choice(list(_INFO))
        opener, kids = _INFO[topic][0], kids if "{kids}" in _INFO[topic][0] else {}
        opener = opener.format(kids=_kids_phrase(rng, kids)) if kids else opener
    else:
        opener, kids = rng.choice(_OTHER), {}
    fragments = [opener, rng.choice(_IDENTITY).format(parent=fam["parent"], phone=phone)]
    if intent in _DATE_ASKS:
        phrase, day = _date_phrase(rng, day0)
        ask, dates = rng.choice(_DATE_ASKS[intent]).format(d=phrase), [day]
        if intent == "booking" and rng.random() < 0.3:
            phrase, day = _date_phrase(rng, day0)
            ask, dates = f"{ask} If not, {phrase} works too.", [*dates, day]
        fragments.append(ask)
    return phone, kids, dates, topic, fragments


def _tool_args(tool: str, ctx: dict[str, Any]) -> dict[str, Any]:
    return {
        "lookup_patient": {"phone": ctx["e164"], "guardian_name": ctx["parent"]},
        "check_availability": {"date": ctx["dates"][-1], "patient_count": len(ctx["pids"])},
        "book_appointment": {
            "patient_ids": ctx["pids"],
            "date": ctx["dates"][0],
            "time": ctx["slot"],
            "visit_type": "cleaning",
        },
        "send_confirmation": {"phone": ctx["e164"], "channel": "sms", "appointment_id": ctx["apt"]},
        "find_appointment": {"patient_ids": ctx["pids"]},
        "reschedule_appointment": {
            "appointment_id": ctx["apt"],
            "new_date": ctx["dates"][-1],
            "new_time": ctx["slot"],
        },
        "cancel_appointment": {"appointment_id": ctx["apt"], "reason": "caller_request"},
        "get_clinic_info": {"topic": ctx["topic"]},
        "transfer_to_staff": {"queue": "billing", "reason": "billing question"},
    }[tool]


def _tool_result(tool: str, ctx: dict[str, Any]) -> dict[str, Any]:
    patients = [
        {"patient_id": p, "first_name": n} for p, n in zip(ctx["pids"], ctx["kids"], strict=True)
    ]
    return {
        "lookup_patient": {"guardian_id": "G-" + ctx["e164"][-4:], "patients": patients},
        "check_availability": {"date": ctx["dates"][-1], "slots": [ctx["slot"], "16:45"]},
        "book_appointment": {
            "appointment_id": ctx["apt"],
            "status": "booked",
            "date": ctx["dates"][0],
            "time": ctx["slot"],
        },
        "send_confirmation": {"sent": True, "channel": "sms"},
        "find_appointment": {
            "appointment_id": ctx["apt"],
            "date": ctx["dates"][0],
            "time": "10:30",
            "patient_ids": ctx["pids"],
        },
        "reschedule_appointment": {
            "appointment_id": ctx["apt"],
            "status": "rescheduled",
            "date": ctx["dates"][-1],
            "time": ctx["slot"],
        },
        "cancel_appointment": {"appointment_id": ctx["apt"], "status": "cancelled"},
        "get_clinic_info": {"topic": ctx["topic"], "answer": _INFO.get(ctx["topic"], ("", ""))[1]},
        "transfer_to_staff": {"transferred": True, "queue": "billing", "wait_minutes": 4},
    }[tool]


def _reply(
    chunk: list[tuple[str, bool]], ctx: dict[str, Any], closing: str, rng: random.Random
) -> str:
    if closing == "failed":
        return (
            "I'm sorry, our scheduling system isn't responding right now. Please call back "
            "in a little while or I can have the front desk call you."
        )
    if not chunk:
        return rng.choice(
            [
                "Sure, I can help with that. Can I have your name and the phone "
                "number on the account?",
                "Of course! Which day works best for you?",
                "Got it, one moment while I pull that up.",
            ]
        )
    tool = chunk[-1][0]
    if tool == "get_clinic_info":
        return str(_tool_result(tool, ctx)["answer"])
    return {
        "lookup_patient": f"Thanks, I found {', '.join(ctx['kids'])} in our system.",
        "check_availability": f"I have {ctx['slot']} or 16:45 available. Which works better?",
        "book_appointment": f"You're booked for {ctx['dates'][0]} at {ctx['slot']}.",
        "send_confirmation": "I've texted you a confirmation. Anything else I can help with?",
        "find_appointment": f"I see the appointment on {ctx['dates'][0]} at 10:30.",
        "reschedule_appointment": f"Done, it's now {ctx['dates'][-1]} at {ctx['slot']}.",
        "cancel_appointment": "That appointment is cancelled. Would you like to rebook later?",
        "transfer_to_staff": "I'm transferring you to our billing team now, please hold.",
    }[tool]

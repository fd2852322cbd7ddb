"""Write the project's small sample pool and test set (deterministic, offline, no models).

    python data/sample/generate.py            # rewrites data/sample/{pool,test,judge_pairs}.jsonl
    python data/sample/generate.py --out DIR  # writes them into DIR instead
    python data/sample/generate.py --seed 2024 --out DIR   # another pool of the same kind (a dev set)

pool.jsonl: 300 lines of {instruction, input, output, category, _flaw}, built from templates over small
tables (facts, arithmetic, conversions, rewriting, lists, how-to, code, classification, reasoning, language).
297 rows are distinct; 3 rows are repeated verbatim further down, so the loader's duplicate counter shows 3
(the pool has 297 unique ids). A third of the distinct rows (99) are flawed the way Alpaca rows are flawed,
and ``_flaw`` names how (the pipeline never reads it; it lets a report check what a selection kept):

- ``wrong_answer``: a plausible but wrong answer (wrong number, wrong fact, buggy code, steps out of order)
- ``irrelevant``: the answer to a different instruction
- ``truncated``: the answer cut off mid-way
- ``empty``: an empty output ("" is a valid string for the loader; a grader should score it low)
- ``restates``: the output only repeats the instruction

Clean rows have ``_flaw`` = "". test.jsonl: 40 instructions {id, instruction, input, category} from the same
templates, none of them in the pool.

judge_pairs.jsonl: 99 labelled pairs that qualify a pairwise judge (the qualify_judge stage): for every distinct
flawed pool row, the clean answer to its instruction against the flawed answer the pool holds, so the winner is
known by construction. {idx, instruction, input, response1, response2, label (1 or 2: the clean side), flaw,
category}; which side is response1 is a seeded coin flip. None of them is a test item. The same Python version
writes the same bytes (tests check this).
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

POOL_ROWS, DUPLICATES, TEST_ITEMS, SEED = 297, 3, 40, 20240601


@dataclass(frozen=True)
class Item:
    category: str
    instruction: str
    input: str
    output: str
    wrong: str  # a plausible wrong answer for the same instruction


Family = Callable[[random.Random], Item]

CAPITALS = [("France", "Paris"), ("Japan", "Tokyo"), ("Kenya", "Nairobi"), ("Canada", "Ottawa"),
            ("Australia", "Canberra"), ("Brazil", "Brasilia"), ("Egypt", "Cairo"), ("Spain", "Madrid"),
            ("Italy", "Rome"), ("Germany", "Berlin"), ("Norway", "Oslo"), ("Peru", "Lima"), ("Chile", "Santiago"),
            ("India", "New Delhi"), ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"), ("Poland", "Warsaw"),
            ("Portugal", "Lisbon"), ("Greece", "Athens"), ("Turkey", "Ankara"), ("Morocco", "Rabat"),
            ("Nigeria", "Abuja"), ("Argentina", "Buenos Aires"), ("Sweden", "Stockholm"), ("Finland", "Helsinki"),
            ("Ireland", "Dublin"), ("Austria", "Vienna"), ("Hungary", "Budapest"), ("South Korea", "Seoul"),
            ("Indonesia", "Jakarta"), ("Ghana", "Accra"), ("Cuba", "Havana"), ("New Zealand", "Wellington"),
            ("Switzerland", "Bern"), ("Denmark", "Copenhagen"), ("Ethiopia", "Addis Ababa")]
ELEMENTS = [("hydrogen", "H"), ("helium", "He"), ("carbon", "C"), ("nitrogen", "N"), ("oxygen", "O"),
            ("sodium", "Na"), ("magnesium", "Mg"), ("aluminium", "Al"), ("silicon", "Si"), ("phosphorus", "P"),
            ("sulfur", "S"), ("chlorine", "Cl"), ("potassium", "K"), ("calcium", "Ca"), ("iron", "Fe"),
            ("copper", "Cu"), ("zinc", "Zn"), ("silver", "Ag"), ("gold", "Au"), ("mercury", "Hg"), ("lead", "Pb"),
            ("tin", "Sn"), ("neon", "Ne"), ("uranium", "U")]
BOOKS = [("Pride and Prejudice", "Jane Austen"), ("1984", "George Orwell"), ("Moby-Dick", "Herman Melville"),
         ("Hamlet", "William Shakespeare"), ("War and Peace", "Leo Tolstoy"),
         ("The Old Man and the Sea", "Ernest Hemingway"), ("Don Quixote", "Miguel de Cervantes"),
         ("Frankenstein", "Mary Shelley"), ("The Odyssey", "Homer"), ("Great Expectations", "Charles Dickens"),
         ("To Kill a Mockingbird", "Harper Lee"), ("The Great Gatsby", "F. Scott Fitzgerald"),
         ("Crime and Punishment", "Fyodor Dostoevsky"), ("The Hobbit", "J.R.R. Tolkien"),
         ("Jane Eyre", "Charlotte Bronte"), ("Brave New World", "Aldous Huxley"), ("Les Miserables", "Victor Hugo")]
NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Grace", "Hugo", "Ivan", "Jun", "Kofi", "Lena", "Mira",
         "Noah", "Omar", "Priya"]
THINGS = ["apple", "pencil", "book", "marble", "sticker", "coin", "card", "shell"]
CONVERSIONS = [("kilometres", "metres", 1000), ("kilograms", "grams", 1000), ("hours", "minutes", 60),
               ("metres", "centimetres", 100), ("minutes", "seconds", 60), ("litres", "millilitres", 1000)]
SUBJECTS = ["Maria", "The chef", "My neighbour", "Tom", "The teacher", "Our intern", "The artist", "Grandpa"]
VERBS = {  # present (3rd person), past, participle: objects that make sense with the verb
    ("cooks", "cooked", "cooked"): ["dinner", "the soup", "a curry"],
    ("writes", "wrote", "written"): ["a letter", "the report", "a poem"],
    ("builds", "built", "built"): ["a bridge", "the shed", "a robot"],
    ("cleans", "cleaned", "cleaned"): ["the kitchen", "the windows"],
    ("repairs", "repaired", "repaired"): ["the bike", "the roof", "the old clock"],
    ("paints", "painted", "painted"): ["the fence", "a portrait"],
    ("sings", "sang", "sung"): ["a song", "the anthem"],
    ("plants", "planted", "planted"): ["the tomatoes", "a tree"],
    ("bakes", "baked", "baked"): ["bread", "a cake"],
}
KINDS = {"fruits": ["apple", "banana", "mango", "pear", "cherry", "plum", "kiwi", "orange"],
         "colours": ["red", "blue", "green", "yellow", "purple", "orange", "brown", "grey"],
         "vegetables": ["carrot", "broccoli", "spinach", "potato", "onion", "pepper", "cabbage", "leek"],
         "musical instruments": ["piano", "violin", "guitar", "flute", "drums", "cello", "trumpet", "harp"],
         "programming languages": ["Python", "Java", "C", "Rust", "Go", "JavaScript", "Ruby", "Haskell"],
         "mammals": ["dog", "whale", "bat", "elephant", "horse", "mouse", "tiger", "dolphin"],
         "sports": ["football", "tennis", "swimming", "rugby", "cycling", "golf", "volleyball", "rowing"]}
HOW_TO = {
    "boil an egg": ["Place the egg in a pot and cover it with cold water.", "Bring the water to a boil.",
                    "Simmer for 9 minutes for a firm yolk.", "Cool the egg in cold water, then peel it."],
    "make a cup of tea": ["Boil fresh water.", "Put a tea bag in a cup.", "Pour the hot water over it.",
                          "Steep for 3 to 5 minutes, then remove the bag."],
    "plant a tomato seedling": ["Pick a sunny spot.", "Dig a hole deeper than the root ball.",
                                "Set the seedling in and fill the hole with soil.", "Water it well."],
    "clean a laptop keyboard": ["Turn the laptop off.", "Tip it over and tap out loose crumbs.",
                                "Blow between the keys with compressed air.",
                                "Wipe the keys with a slightly damp cloth."],
    "back up photos from a phone": ["Connect the phone to a computer or open a cloud app.",
                                    "Select the photo folder.", "Copy the photos to the backup location.",
                                    "Check that a few copied photos open."],
    "wash your hands properly": ["Wet your hands with clean water.", "Apply soap.",
                                 "Scrub all surfaces for at least 20 seconds.", "Rinse and dry with a clean towel."],
    "reset a home router": ["Find the small reset hole on the back.", "Press it with a paper clip for 10 seconds.",
                            "Wait for the lights to settle.", "Log in with the default password and set a new one."],
    "start a compost pile": ["Choose a shady corner of the garden.", "Layer green scraps with dry leaves.",
                             "Keep the pile as moist as a wrung-out sponge.", "Turn it every two weeks."],
    "create a strong password": ["Use at least 12 characters.", "Mix words, numbers and symbols.",
                                 "Avoid names and birthdays.", "Store it in a password manager."],
    "prepare for a job interview": ["Research the company.", "Reread the job description.",
                                    "Practise answers to common questions aloud.", "Prepare two questions to ask."],
}
CODE = [  # description, correct code, buggy code
    ("reverses a string", "def reverse_string(s):\n    return s[::-1]", "def reverse_string(s):\n    return s[::1]"),
    ("returns the sum of a list of numbers", "def total(numbers):\n    return sum(numbers)",
     "def total(numbers):\n    return max(numbers)"),
    ("checks whether a number is even", "def is_even(n):\n    return n % 2 == 0", "def is_even(n):\n    return n % 2 == 1"),
    ("computes the factorial of n",
     "def factorial(n):\n    result = 1\n    for i in range(2, n + 1):\n        result *= i\n    return result",
     "def factorial(n):\n    result = 1\n    for i in range(2, n):\n        result *= i\n    return result"),
    ("counts the vowels in a string", "def count_vowels(text):\n    return sum(ch in 'aeiou' for ch in text.lower())",
     "def count_vowels(text):\n    return sum(ch in 'aei' for ch in text)"),
    ("checks whether a word is a palindrome", "def is_palindrome(word):\n    w = word.lower()\n    return w == w[::-1]",
     "def is_palindrome(word):\n    return word == word[1:]"),
    ("finds the largest number in a list without using max()",
     "def largest(numbers):\n    best = numbers[0]\n    for x in numbers[1:]:\n        if x > best:\n            best = x\n    return best",
     "def largest(numbers):\n    best = 0\n    for x in numbers:\n        if x < best:\n            best = x\n    return best"),
    ("converts Celsius to Fahrenheit", "def c_to_f(c):\n    return c * 9 / 5 + 32", "def c_to_f(c):\n    return c * 5 / 9 + 32"),
    ("squares every number in a list", "def squares(numbers):\n    return [x * x for x in numbers]",
     "def squares(numbers):\n    return [x * 2 for x in numbers]"),
    ("removes duplicates from a list while keeping the order", "def dedupe(items):\n    return list(dict.fromkeys(items))",
     "def dedupe(items):\n    return sorted(set(items))"),
    ("returns the average of a list of numbers", "def average(numbers):\n    return sum(numbers) / len(numbers)",
     "def average(numbers):\n    return sum(numbers) / (len(numbers) - 1)"),
    ("counts the words in a sentence", "def count_words(text):\n    return len(text.split())",
     "def count_words(text):\n    return text.count(' ')"),
]
PRODUCTS = ["the headphones", "this blender", "the hotel room", "the new phone", "this jacket", "the restaurant",
            "the delivery service", "the museum tour", "the app", "this novel"]
SENTIMENTS = {"Positive": ["exceeded my expectations", "is worth every penny", "made my week", "works perfectly"],
              "Negative": ["broke after two days", "was a waste of money", "left me disappointed", "is slow and frustrating"],
              "Neutral": ["is about what I expected", "was fine, nothing special", "is neither good nor bad"]}
ANIMALS = [("dolphin", "mammal"), ("bat", "mammal"), ("kangaroo", "mammal"), ("whale", "mammal"),
           ("penguin", "bird"), ("ostrich", "bird"), ("eagle", "bird"), ("owl", "bird"), ("salmon", "fish"),
           ("shark", "fish"), ("seahorse", "fish"), ("tuna", "fish"), ("frog", "amphibian"),
           ("salamander", "amphibian"), ("newt", "amphibian"), ("toad", "amphibian"), ("crocodile", "reptile"),
           ("gecko", "reptile"), ("tortoise", "reptile"), ("cobra", "reptile")]
ANTONYMS = [("hot", "cold"), ("happy", "sad"), ("early", "late"), ("open", "closed"), ("strong", "weak"),
            ("ancient", "modern"), ("generous", "selfish"), ("rough", "smooth"), ("loud", "quiet"),
            ("heavy", "light"), ("accept", "refuse"), ("victory", "defeat"), ("increase", "decrease"),
            ("brave", "cowardly"), ("rare", "common"), ("shallow", "deep"), ("wide", "narrow"),
            ("guilty", "innocent")]


def numbered(lines: list[str]) -> str:
    return "\n".join(f"{i}. {line}" for i, line in enumerate(lines, start=1))


def lower_subject(subject: str) -> str:
    return subject if subject in ("Maria", "Tom", "Grandpa") else subject[0].lower() + subject[1:]


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def capital(rng: random.Random) -> Item:
    (country, city), (_, other) = rng.sample(CAPITALS, 2)
    ask = rng.choice(["What is the capital of {c}?", "Name the capital city of {c}.", "Which city is the capital of {c}?"])
    say = rng.choice(["The capital of {c} is {x}.", "{x} is the capital of {c}."])
    return Item("facts", ask.format(c=country), "", say.format(c=country, x=city), say.format(c=country, x=other))


def element(rng: random.Random) -> Item:
    (name, symbol), (_, other) = rng.sample(ELEMENTS, 2)
    ask = rng.choice(["What is the chemical symbol for {e}?", "Give the chemical symbol of {e}.",
                      "Which symbol stands for {e} in the periodic table?"])
    say = "The chemical symbol for {e} is {s}."
    return Item("facts", ask.format(e=name), "", say.format(e=name, s=symbol), say.format(e=name, s=other))


def author(rng: random.Random) -> Item:
    (book, writer), (_, other) = rng.sample(BOOKS, 2)
    ask = rng.choice(["Who wrote {b}?", "Name the author of {b}.", "Who is the author of the book {b}?"])
    say = "{b} was written by {a}."
    return Item("facts", ask.format(b=book), "", say.format(b=book, a=writer), say.format(b=book, a=other))


def arithmetic(rng: random.Random) -> Item:
    a, b = rng.randint(12, 99), rng.randint(3, 60)
    sign, value = rng.choice([("+", a + b), ("-", a - b), ("x", a * b)])
    ask = rng.choice(["What is {a} {op} {b}?", "Calculate {a} {op} {b}.", "Compute {a} {op} {b} and give the result."])
    off = rng.choice([-10, -2, -1, 1, 2, 10])
    return Item("arithmetic", ask.format(a=a, op=sign, b=b), "", f"{a} {sign} {b} = {value}.",
                f"{a} {sign} {b} = {value + off}.")


def percent(rng: random.Random) -> Item:
    p, n = rng.choice([5, 10, 15, 20, 25, 50, 75]), 20 * rng.randint(2, 30)
    value = p * n // 100
    say = "{p}% of {n} is {v}, because {n} x {p} / 100 = {v}."
    return Item("arithmetic", f"What is {p}% of {n}?", "", say.format(p=p, n=n, v=value),
                say.format(p=p, n=n, v=value + rng.choice([-5, 5, 10])))


def word_problem(rng: random.Random) -> Item:
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    a, b = rng.randint(8, 40), rng.randint(2, 7)
    if rng.random() < 0.5:
        ask, value, expr = f"{name} has {a} {thing}s and buys {b} more. How many {thing}s does {name} have now?", a + b, f"{a} + {b}"
    else:
        ask, value, expr = f"{name} has {a} {thing}s and gives {b} away. How many {thing}s are left?", a - b, f"{a} - {b}"
    say = "{n} has {e} = {v} {t}s."
    return Item("arithmetic", ask, "", say.format(n=name, e=expr, v=value, t=thing),
                say.format(n=name, e=expr, v=value + rng.choice([-1, 1, 2]), t=thing))


def conversion(rng: random.Random) -> Item:
    if rng.random() < 0.35:
        c = 5 * rng.randint(-4, 8)
        f = c * 9 // 5 + 32
        say = "{c} degrees Celsius is {f} degrees Fahrenheit (multiply by 9/5, then add 32)."
        return Item("conversion", f"Convert {c} degrees Celsius to Fahrenheit.", "", say.format(c=c, f=f),
                    say.format(c=c, f=c + 32))  # forgot the 9/5 (right only at 0: see flawed_output)
    src, dst, factor = rng.choice(CONVERSIONS)
    value = rng.choice([2, 3, 4, 5, 7, 8, 12, 15, 2.5, 1.5])
    shown = f"{value:g}"
    return Item("conversion", f"Convert {shown} {src} to {dst}.", "", f"{shown} {src} is {value * factor:g} {dst}.",
                f"{shown} {src} is {value * factor / 10:g} {dst}.")


def rewrite(rng: random.Random) -> Item:
    subject = rng.choice(SUBJECTS)
    (present, past, participle), objects = rng.choice(list(VERBS.items()))
    obj = rng.choice(objects)
    sentence = f"{subject} {present} {obj}."
    if rng.random() < 0.5:
        return Item("rewriting", "Rewrite the sentence in the past tense.", sentence, f"{subject} {past} {obj}.",
                    f"{subject} will {present[:-1]} {obj}.")
    passive = f"{obj[0].upper()}{obj[1:]} was {participle} by {lower_subject(subject)}."
    return Item("rewriting", "Rewrite the sentence in the passive voice, in the past tense.", sentence, passive,
                f"{subject} {past} {obj}.")


def listing(rng: random.Random) -> Item:
    kind, other = rng.sample(sorted(KINDS), 2)
    n = rng.randint(3, 5)
    ask = rng.choice(["List {n} {k}.", "Name {n} {k}.", "Give me a list of {n} {k}."])
    return Item("lists", ask.format(n=n, k=kind), "", numbered(rng.sample(KINDS[kind], n)),
                numbered(rng.sample(KINDS[other], n)))


def how_to(rng: random.Random) -> Item:
    task = rng.choice(sorted(HOW_TO))
    ask = rng.choice(["Explain briefly how to {t}.", "How do I {t}? Keep it short.", "Give short steps to {t}."])
    steps = HOW_TO[task]
    return Item("how_to", ask.format(t=task), "", numbered(steps), numbered(steps[::-1]))


def code(rng: random.Random) -> Item:
    what, good, bad = rng.choice(CODE)
    ask = rng.choice(["Write a Python function that {w}.", "Write a short Python function that {w}.",
                      "In Python, write a function that {w}."])
    return Item("code", ask.format(w=what), "", good, bad)


def sentiment(rng: random.Random) -> Item:
    label = rng.choice(sorted(SENTIMENTS))
    product = rng.choice(PRODUCTS)
    review = f"{product[0].upper()}{product[1:]} {rng.choice(SENTIMENTS[label])}."
    wrong = rng.choice([x for x in sorted(SENTIMENTS) if x != label])
    return Item("classification", "Classify the sentiment of this review as Positive, Negative or Neutral.", review,
                label, wrong)


def animal(rng: random.Random) -> Item:
    name, group = rng.choice(ANIMALS)
    wrong = rng.choice(sorted({g for _, g in ANIMALS} - {group}))
    ask = rng.choice(["Is a {a} a mammal, bird, fish, reptile or amphibian?",
                      "Classify the {a} as a mammal, bird, fish, reptile or amphibian."])
    say = "A {a} is {x} {g}."
    return Item("classification", ask.format(a=name), "", say.format(a=name, x=article(group), g=group),
                say.format(a=name, x=article(wrong), g=wrong))


def prime(rng: random.Random) -> Item:
    n = rng.randint(11, 120)
    divisor = next((d for d in range(2, n) if n % d == 0), None)
    yes, no = f"Yes, {n} is prime: its only divisors are 1 and {n}.", f"No, {n} is not prime; it is divisible by {divisor or 2}."
    return Item("reasoning", f"Is {n} a prime number?", "", no if divisor else yes, yes if divisor else no)


def sort_numbers(rng: random.Random) -> Item:
    numbers = rng.sample(range(1, 100), rng.randint(4, 7))
    wrong = sorted(numbers)
    wrong[0], wrong[-1] = wrong[-1], wrong[0]
    return Item("reasoning", "Sort these numbers from smallest to largest.", ", ".join(map(str, numbers)),
                ", ".join(map(str, sorted(numbers))), ", ".join(map(str, wrong)))


def antonym(rng: random.Random) -> Item:
    (word, opposite), (_, other) = rng.sample(ANTONYMS, 2)
    if rng.random() < 0.5:
        word, opposite = opposite, word
    say = 'The opposite of "{w}" is "{o}".'
    return Item("language", f'What is the opposite of the word "{word}"?', "", say.format(w=word, o=opposite),
                say.format(w=word, o=other))


def word_count(rng: random.Random) -> Item:
    sentence = rewrite(rng).input
    if rng.random() < 0.5:
        sentence = sentence[:-1] + f" on {rng.choice(['Monday', 'Friday', 'Sunday'])} morning."
    n = len(sentence.split())
    return Item("language", "How many words are in this sentence?", sentence, f"The sentence has {n} words.",
                f"The sentence has {n + rng.choice([-2, -1, 1, 2])} words.")


FAMILIES: list[Family] = [capital, element, author, arithmetic, percent, word_problem, conversion, rewrite,
                          listing, how_to, code, sentiment, animal, prime, sort_numbers, antonym, word_count]
FLAWS = ["wrong_answer"] * 3 + ["irrelevant"] * 2 + ["truncated"] * 2 + ["empty"] + ["restates"] * 2


def draw(rng: random.Random, count: int, taken: set[tuple[str, str]]) -> list[Item]:
    """``count`` items cycling through the families, none whose (instruction, input) is already taken."""
    items: list[Item] = []
    i = 0
    while len(items) < count:
        for _ in range(50):
            item = FAMILIES[i % len(FAMILIES)](rng)
            if (item.instruction, item.input) not in taken:
                taken.add((item.instruction, item.input))
                items.append(item)
                break
        i += 1
    return items


def flawed_output(item: Item, flaw: str, rng: random.Random, items: list[Item]) -> str:
    if flaw == "wrong_answer" and item.wrong != item.output:
        return item.wrong
    if flaw in ("wrong_answer", "irrelevant"):
        return rng.choice([x for x in items if x.category != item.category]).output
    if flaw == "truncated":
        cut = item.output.rfind(" ", 0, max(len(item.output) // 2, 4))
        return item.output[: cut if cut > 0 else len(item.output) // 2]
    if flaw == "empty":
        return ""
    full = f"{item.instruction} {item.input}".strip()
    return rng.choice([full, f"Sure. {item.instruction}", f"You want me to answer this: {full}"])


def build(seed: int = SEED) -> tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, object]]]:
    """The pool, the test set and the clean-vs-flawed judge pairs."""
    rng, coin = random.Random(seed), random.Random(seed + 2)
    taken: set[tuple[str, str]] = set()
    items = draw(rng, POOL_ROWS, taken)
    flawed = set(rng.sample(range(POOL_ROWS), POOL_ROWS // 3))
    pool, pairs = [], []
    for index, item in enumerate(items):
        flaw = rng.choice(FLAWS) if index in flawed else ""
        if flaw == "truncated" and len(item.output.split()) < 6:
            flaw = "wrong_answer"
        output = flawed_output(item, flaw, rng, items) if flaw else item.output
        pool.append({"instruction": item.instruction, "input": item.input, "output": output,
                     "category": item.category, "_flaw": flaw})
        if flaw and output != item.output:
            clean_first = coin.random() < 0.5
            first, second = (item.output, output) if clean_first else (output, item.output)
            pairs.append({"idx": len(pairs), "instruction": item.instruction, "input": item.input,
                          "response1": first, "response2": second, "label": 1 if clean_first else 2,
                          "flaw": flaw, "category": item.category})
    for source in sorted(rng.sample(range(POOL_ROWS // 2), DUPLICATES)):
        pool.insert(rng.randint(POOL_ROWS // 2, len(pool)), dict(pool[source]))
    tests = [{"id": f"sample-{i:02d}", "instruction": t.instruction, "input": t.input, "category": t.category}
             for i, t in enumerate(draw(random.Random(seed + 1), TEST_ITEMS, taken), start=1)]
    return pool, tests, pairs


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--seed", type=int, default=SEED, help=f"default {SEED}: the committed sample")
    args = parser.parse_args()
    pool, tests, pairs = build(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out / "pool.jsonl", pool)
    write_jsonl(args.out / "test.jsonl", tests)
    write_jsonl(args.out / "judge_pairs.jsonl", pairs)
    flawed = sum(bool(row["_flaw"]) for row in pool)
    print(json.dumps({"pool_rows": len(pool), "flawed": flawed, "test_items": len(tests), "judge_pairs": len(pairs),
                      "out": str(args.out)}))


if __name__ == "__main__":
    main()

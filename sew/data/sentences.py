"""A deterministic English sentence generator for the built-in corpus (word lists + templates).

All text is lower-case a-z, apostrophe and space, numbers written out. ``generate_sentences``
draws unique sentences of 5-15 words from ``(seed)``; the same seed gives the same list.
"""

from __future__ import annotations

import numpy as np

NAMES = """james mary john linda robert susan michael karen david nancy william lisa richard betty
thomas helen charles sandra daniel donna paul carol mark ruth george sharon kevin laura brian emily
edward anna ronald alice peter grace jack sarah oliver lucy""".split()

NOUNS = """apple baby bag ball banana basket bed bell bench bicycle bird blanket boat book boot bottle
bowl box boy bread brick bridge brush bucket bus butter button cake camera candle cap car card carpet
carrot cat chair cheese cherry chicken child clock cloud coat coin computer cookie cow cup curtain desk
dog doll door dress drum duck egg elephant envelope fan farmer feather fence finger fish flag flower
fork fox frog garden gate gift girl glass glove goat guitar hammer hat heart helmet horse house jacket
jar key kite knife ladder lamp leaf lemon letter lion lock map melon mirror monkey moon mouse mug nail
needle nest net newspaper notebook nurse onion orange owl pan paper parcel parrot peach pear pen pencil
pepper piano picture pie pig pillow plate plum pocket pot potato puppy purse rabbit radio ring river
road robot rock roof rope rose ruler sandwich saucer scarf scissors seed sheep shell ship shirt shoe
sock sofa spoon stamp star stone stove string sugar suitcase sun table teacher teapot telephone tent
ticket tiger tomato tooth towel toy train tree truck turtle umbrella vase violin wagon wallet
watch whistle window wheel wolf worm yard zebra anchor arrow axe badge balloon barrel basin beard
biscuit blade bone branch bubble cabbage cabin candy canoe castle cellar chain chimney coffee
collar compass cottage crayon crown cushion diamond dragon drawer engine feast fiddle flame flute
fountain glacier goose grape harbor harp hive honey hook island jewel kettle kitten lantern lizard
locket magnet marble meadow medal mitten mountain muffin napkin necklace noodle oven paddle palace
parade pebble pickle pilot pirate planet pony puddle pumpkin puzzle quilt rainbow raisin
ribbon rocket saddle sailor salad sandal shovel skate sled slipper snail spider sponge squirrel
statue sweater tablet thimble thunder tractor trumpet tulip tunnel turkey valley village waffle
walnut whale wizard""".split()

PLACES = """kitchen garden market station library school office park hospital bakery museum theater
church harbor forest beach airport hotel factory farm cinema stadium bank pharmacy garage attic
basement hallway classroom playground restaurant supermarket gallery laboratory studio workshop
warehouse courtyard orchard greenhouse barn lighthouse castle village city countryside desert jungle
meadow island valley cathedral bookshop cafe zoo aquarium circus arena chapel dungeon tavern""".split()

# base, third person, past, present participle
VERBS = [v.split() for v in """
accept accepts accepted accepting|admire admires admired admiring|answer answers answered answering
borrow borrows borrowed borrowing|bring brings brought bringing|build builds built building
buy buys bought buying|carry carries carried carrying|catch catches caught catching
change changes changed changing|chase chases chased chasing|check checks checked checking
choose chooses chose choosing|clean cleans cleaned cleaning|climb climbs climbed climbing
close closes closed closing|collect collects collected collecting|cook cooks cooked cooking
count counts counted counting|cover covers covered covering|cut cuts cut cutting
deliver delivers delivered delivering|describe describes described describing
discover discovers discovered discovering|draw draws drew drawing|drop drops dropped dropping
eat eats ate eating|enjoy enjoys enjoyed enjoying|explain explains explained explaining
fill fills filled filling|find finds found finding|fix fixes fixed fixing|fold folds folded folding
follow follows followed following|forget forgets forgot forgetting|give gives gave giving
grab grabs grabbed grabbing|guard guards guarded guarding|hang hangs hung hanging
help helps helped helping|hide hides hid hiding|hold holds held holding|hug hugs hugged hugging
imagine imagines imagined imagining|inspect inspects inspected inspecting|keep keeps kept keeping
kick kicks kicked kicking|lift lifts lifted lifting|like likes liked liking|lose loses lost losing
love loves loved loving|make makes made making|measure measures measured measuring
mend mends mended mending|move moves moved moving|notice notices noticed noticing
open opens opened opening|order orders ordered ordering|paint paints painted painting
pack packs packed packing|pass passes passed passing|pick picks picked picking
place places placed placing|play plays played playing|polish polishes polished polishing
pull pulls pulled pulling|push pushes pushed pushing|reach reaches reached reaching
read reads read reading|remember remembers remembered remembering|repair repairs repaired repairing
return returns returned returning|save saves saved saving|search searches searched searching
see sees saw seeing|sell sells sold selling|send sends sent sending|share shares shared sharing
show shows showed showing|sketch sketches sketched sketching|spill spills spilled spilling
steal steals stole stealing|study studies studied studying|take takes took taking
taste tastes tasted tasting|teach teaches taught teaching|test tests tested testing
throw throws threw throwing|touch touches touched touching|trade trades traded trading
visit visits visited visiting|want wants wanted wanting|wash washes washed washing
watch watches watched watching|wear wears wore wearing|weigh weighs weighed weighing
win wins won winning|wrap wraps wrapped wrapping|write writes wrote writing|bake bakes baked baking
bury buries buried burying|feed feeds fed feeding|heat heats heated heating|hunt hunts hunted hunting
kiss kisses kissed kissing|knit knits knitted knitting|label labels labelled labelling
lend lends lent lending|mix mixes mixed mixing|peel peels peeled peeling|plant plants planted planting
print prints printed printing|rescue rescues rescued rescuing|roll rolls rolled rolling
scrub scrubs scrubbed scrubbing|shake shakes shook shaking|sort sorts sorted sorting
squeeze squeezes squeezed squeezing|stack stacks stacked stacking|tie ties tied tying
toss tosses tossed tossing|wipe wipes wiped wiping""".replace("\n", "|").split("|") if v.strip()]

ADJECTIVES = """big small tall short long old new young ancient modern heavy light bright dark warm cold
hot cool wet dry clean dirty soft hard smooth rough quiet loud fast slow strong weak rich poor happy
sad angry calm brave shy proud lazy busy clever silly funny serious gentle kind cruel polite rude
honest famous strange curious lucky tired hungry thirsty sleepy noisy empty full fresh stale sweet
sour bitter salty spicy tasty delicious plain fancy simple cheap expensive rare common tiny huge
narrow wide deep shallow thick thin round square flat sharp blunt broken shiny dusty rusty wooden
golden silver plastic woolen cotton leather paper glass red blue green yellow orange purple pink brown
black white gray violet crimson pale striped spotted wild tame cheerful grumpy nervous eager careful
careless gloomy sunny rainy windy foggy icy snowy stormy frozen hollow wobbly sticky fluffy fuzzy
crooked tidy messy crowded lonely peaceful precious pretty ugly handsome graceful clumsy elegant
enormous gigantic little mighty magic secret hidden private public royal humble ordinary special
perfect terrible wonderful awful lovely marvelous splendid gorgeous quick early late final""".split()

ADVERBS = """quickly slowly quietly loudly carefully gently happily sadly eagerly calmly bravely
proudly softly badly neatly easily rarely often always never sometimes suddenly finally nearly
almost already again together outside inside upstairs downstairs yesterday today tomorrow early
soon later politely patiently angrily nervously cheerfully lazily silently warmly""".split()

PREPOSITIONS = "near behind under above beside inside across past around beyond below toward".split()

NUMBERS = """two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen
sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety""".split()

TIMES = ["on monday", "on tuesday", "on wednesday", "on thursday", "on friday", "on saturday",
         "on sunday", "in january", "in february", "in march", "in april", "in may", "in june",
         "in july", "in august", "in september", "in october", "in november", "in december",
         "this morning", "last night", "at noon", "at midnight", "in the evening", "every week",
         "last summer", "next winter", "in the spring", "during the autumn", "after lunch",
         "before dinner", "after breakfast", "at dawn", "at dusk", "last year", "next month"]

SUBJECT_CONTRACTIONS = "i'm you're we're they're he's she's".split()
NEG_CONTRACTIONS = "didn't couldn't wouldn't shouldn't won't can't".split()

_IRREGULAR_PLURALS = {"child": "children", "foot": "feet", "goose": "geese", "knife": "knives",
                      "leaf": "leaves", "mouse": "mice", "sheep": "sheep", "tooth": "teeth", "wolf": "wolves",
                      "fish": "fish", "scissors": "scissors", "potato": "potatoes", "tomato": "tomatoes"}


def plural(noun: str) -> str:
    """English plural of a noun from the lists above."""
    if noun in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[noun]
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


class SentenceGenerator:
    """Sentences from 14 templates over the word lists; ``sentence()`` draws one from ``rng``."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def pick(self, words: list[str]) -> str:
        return words[int(self.rng.integers(len(words)))]

    def sentence(self) -> str:
        n, a, v = (lambda: self.pick(NOUNS)), (lambda: self.pick(ADJECTIVES)), (lambda: self.pick(VERBS))
        name, place, time = (lambda: self.pick(NAMES)), (lambda: self.pick(PLACES)), (lambda: self.pick(TIMES))
        templates = [
            lambda: f"{name()} {v()[2]} the {a()} {n()} {time()}",
            lambda: f"the {a()} {n()} {v()[1]} the {n()} {self.pick(PREPOSITIONS)} the {place()}",
            lambda: f"{self.pick(NUMBERS)} {a()} {plural(n())} were {v()[3]} in the {place()}",
            lambda: f"did you {v()[0]} the {n()} {time()}",
            lambda: f"{self.pick(SUBJECT_CONTRACTIONS)} {v()[3]} the {a()} {n()} {self.pick(ADVERBS)}",
            lambda: f"{name()} and {name()} {v()[2]} {self.pick(NUMBERS)} {plural(n())} at the {place()}",
            lambda: f"why don't we {v()[0]} the {a()} {n()} at the {place()}",
            lambda: f"the {n()} in the {place()} was {self.pick(ADVERBS)} {a()}",
            lambda: f"{name()} said that the {n()} {v()[2]} the {a()} {n()}",
            lambda: (lambda adj: f"there's {_article(adj)} {adj} {n()} {self.pick(PREPOSITIONS)} the {n()}")(a()),
            lambda: f"please {v()[0]} the {a()} {n()} before {time().split(' ', 1)[1]}",
            lambda: f"{name()} {self.pick(NEG_CONTRACTIONS)} {v()[0]} the {n()} because it was {a()}",
            lambda: f"how many {plural(n())} did {name()} {v()[0]} {time()}",
            lambda: f"we'll {v()[0]} the {a()} {plural(n())} and the {n()} {self.pick(ADVERBS)} {time()}",
        ]
        return templates[int(self.rng.integers(len(templates)))]()


def generate_sentences(count: int, seed: int, min_words: int = 5, max_words: int = 15,
                       exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """``count`` distinct sentences of ``min_words``-``max_words`` words, none in ``exclude``."""
    gen, out, seen = SentenceGenerator(seed), [], set(exclude)
    for _ in range(count * 100):
        if len(out) == count:
            return out
        text = gen.sentence()
        if min_words <= len(text.split()) <= max_words and text not in seen:
            seen.add(text)
            out.append(text)
    raise RuntimeError(f"could only draw {len(out)} of {count} distinct sentences")


def vocabulary_words() -> set[str]:
    """Every word form the generator can produce."""
    words = set(NAMES + NOUNS + PLACES + ADJECTIVES + ADVERBS + PREPOSITIONS + NUMBERS)
    words |= {plural(n) for n in NOUNS} | {form for quad in VERBS for form in quad}
    words |= {w for t in TIMES for w in t.split()} | set(SUBJECT_CONTRACTIONS + NEG_CONTRACTIONS)
    words |= set("the a an and were did you why don't we in was said that there's please before "
                 "because it how many we'll at".split())
    return words

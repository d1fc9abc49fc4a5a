"""LERT's linguistic label inventories (LTP tag sets), in the order of the released heads'
outputs.

Shared by the corpus builder (corpus/segmentation.py writes pos_ids / ner_ids / dep_ids as
label index + 1, 0 = no label) and the pre-training objective (pretrain/objective.py sizes
and reads the LERT heads by them).
"""

POS_LABELS = tuple("n v wp u d a m p r ns c q nt nh nd j i b ni nz nl z k ws o h e %".split())
NER_LABELS = tuple("O S-Ns S-Nh B-Ni E-Ni I-Ni S-Ni B-Ns E-Ns I-Ns B-Nh E-Nh I-Nh".split())
DEP_LABELS = tuple("ATT WP ADV VOB SBV COO RAD HED POB CMP LAD FOB DBL IOB".split())

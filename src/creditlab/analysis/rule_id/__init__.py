"""Rule identification: which learning rule trained a network, from what can be observed of it.

- :mod:`.feedforward`: SL vs RL in a linear feedforward model with a known decoder (Portes et al. 2022);
- :mod:`.bmi`: the authors' BMI recurrent-network experiment (RFLO with M vs REINFORCE, flow fields);
- :mod:`.library`: which creditlab rule trained a small network, from activity and weight statistics
  recorded during training (in the spirit of Nayebi et al. 2020).
"""

"""A stand-in for the parts of OpenEvolve that task evaluators import.

rayevolve's judge puts the folder holding this package at the end of ``sys.path``, so an
evaluator written for OpenEvolve (``from openevolve.evaluation_result import
EvaluationResult``) runs whether OpenEvolve is installed or not; when it is, the real
package is found first and used. Only the evaluator's result type is provided: nothing
else of OpenEvolve is needed to judge a candidate.
"""
